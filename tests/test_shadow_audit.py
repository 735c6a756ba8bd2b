"""The judge's human audit against the real Label Studio, Postgres and Celery worker started by
make test: pairwise tasks with the sides randomised and kept, picks back by webhook and by pull,
judge-human agreement per month."""
import io
import time
import uuid
from datetime import date

import pytest
from django.core.management import call_command
from django.test import override_settings

from labelling.models import LabelStudioProject, PairwiseAnnotation, PairwiseTask, WebhookDelivery
from labelling.services.projects import get_client
from shadow.models import ShadowAuditItem
from shadow import selectors
from shadow.services import audit
from tests.shadow_helpers import make_pairs, release, run_json, taxonomy

W, L, T, INC = "candidate_win", "served_win", "tie", "inconsistent"


@pytest.fixture(autouse=True)
def audit_project():
    # Label Studio outlives each test's database: a project of its own per test.
    title = f"test-audit-{uuid.uuid4().hex[:10]}"
    with override_settings(SHADOW_AUDIT_PROJECT_TITLE=title, LABEL_STUDIO_PROJECT_TITLE=f"{title}-turns"):
        yield title


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    return check()


def pick(choice: str) -> list[dict]:
    return [{"id": "p1", "from_name": "pick", "to_name": "query", "type": "choices", "value": {"choices": [choice]}}]


@pytest.fixture
def audited(db):
    taxonomy()
    rel = release()
    pairs = make_pairs(rel, {date(2026, 10, 3): [W, W, W, L, L, T, INC, W]})
    make_pairs(rel, {date(2026, 11, 2): [W, L]}, source="november")
    a = audit.audit_create(month="2026-10", sample=6, seed=11)
    return a, {p.pk: p for p in pairs}


@pytest.mark.labelstudio
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_pairwise_round_trip_by_webhook_and_pull_gives_monthly_agreement(audited, audit_project, live_server):
    a, pairs = audited
    items = list(a.items.select_related("pair__turn").order_by("id"))
    # a sample of October's judged pairs only, the candidate's side drawn at random and stored
    assert len(items) == 6 and all(i.pair.day.month == 10 for i in items)
    assert {i.candidate_side for i in items} == {"a", "b"}

    # when: pushed (twice: nothing is sent again)
    first = run_json("shadow_audit", "--month", "2026-10", "--sample", "0")  # a new, empty audit: no error
    assert first["pairs"] == 0
    pushed = audit.audit_push(audit_id=a.pk)
    again = audit.audit_push(audit_id=a.pk)
    assert (pushed["pushed"], again["pushed"], again["already_present"]) == (6, 0, 6)

    # then: Label Studio holds one task per pair with the answers on the stored sides
    client = get_client()
    project = LabelStudioProject.objects.get(title=audit_project)
    assert project.kind == "pairwise"
    in_ls = client.task_ids_by_key(project.ls_project_id, ("evalgap_key",))
    assert sorted(k[0] for k in in_ls) == sorted(i.task_key for i in items) and all(len(v) == 1 for v in in_ls.values())
    tasks = {t.key: t for t in PairwiseTask.objects.filter(project=project)}
    for item in items:
        data = client._ls.tasks.get(id=tasks[item.task_key].ls_task_id).data
        cand_shown = data["answer_a"] if item.candidate_side == "a" else data["answer_b"]
        assert cand_shown == item.pair.candidate_answer
        assert data["query"] == item.pair.turn.query and data["evalgap_key"] == item.task_key

    # people pick: agreeing with the judge on the first four, disagreeing on the last two
    judge_label = {W: "cand", L: "served", T: "tie", INC: "tie"}
    flip = {"cand": "served", "served": "cand", "tie": "cand"}
    picks = {}
    for k, item in enumerate(items):
        want = judge_label[item.pair.outcome] if k < 4 else flip[judge_label[item.pair.outcome]]
        picks[item.task_key] = side_for(item, want)
    with override_settings(EVALGAP_PUBLIC_URL=live_server.url):
        from labelling.services.projects import webhook_url
        hook = client.ensure_webhook(project.ls_project_id, webhook_url(), "test-webhook-secret")
    by_hook = items[:3]
    for item in by_hook:
        client.create_annotation(tasks[item.task_key].ls_task_id, pick(picks[item.task_key]))
    assert wait_for(lambda: PairwiseAnnotation.objects.count() == 3)
    assert WebhookDelivery.objects.filter(error="").count() == WebhookDelivery.objects.count() >= 3
    # the rest arrive by the pull (as if their webhooks were lost)
    client._ls.webhooks.delete(id=hook)
    for item in items[3:]:
        client.create_annotation(tasks[item.task_key].ls_task_id, pick(picks[item.task_key]))
    pulled = run_json("pull_annotations")
    assert pulled["annotations"] == 6 and pulled["created"] == 3
    assert {a.task.key: a.pick for a in PairwiseAnnotation.objects.select_related("task")} == picks

    # judge-human agreement, month by month
    rows = run_json("shadow_audit", "--agreement")
    (october,) = rows
    assert (october["month"], october["audited"], october["picked"]) == ("2026-10", 6, 6)
    assert october["agreement"] == pytest.approx(4 / 6) and october["n"]["agreement"] == 6
    # a bad pick (Label Studio does not check values) is kept with the reason, not counted
    client.create_annotation(tasks[items[0].task_key].ls_task_id, pick("maybe"))
    run_json("pull_annotations")
    bad = PairwiseAnnotation.objects.get(invalid_reason__startswith="pick:")
    assert bad.pick == "" and selectors.audit_agreement_by_month()[0]["picked"] == 6


def side_for(item, who: str) -> str:
    """The side people click for "the candidate", "the served answer" or "tie" on this task."""
    if who == "tie":
        return "tie"
    other = "b" if item.candidate_side == "a" else "a"
    return item.candidate_side if who == "cand" else other


@pytest.mark.django_db
def test_a_pair_is_audited_once_and_the_same_seed_draws_the_same_sample(audited):
    a, pairs = audited
    first = sorted(a.items.values_list("pair_id", "candidate_side"))
    ShadowAuditItem.objects.all().delete()
    again = audit.audit_create(month="2026-10", sample=6, seed=11)
    assert sorted(again.items.values_list("pair_id", "candidate_side")) == first
    rest = audit.audit_create(month="2026-10", sample=6, seed=11)
    assert rest.items.count() == 2  # 8 judged pairs in October, 6 audited already


@pytest.mark.django_db
def test_taxonomy_config_syncs_leave_pairwise_projects_alone(audited):
    from labelling.services.projects import projects_sync_config

    LabelStudioProject.objects.create(title="pairwise-x", ls_project_id=987654, kind="pairwise")
    assert projects_sync_config() == 0  # no turns project here; the pairwise one is not touched
    assert LabelStudioProject.objects.get(title="pairwise-x").config_sha256 == ""


@pytest.mark.django_db
def test_bad_month_is_a_usage_error():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--month: expected YYYY-MM"):
        call_command("shadow_audit", "--month", "October", stdout=io.StringIO())
