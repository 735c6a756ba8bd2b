"""Generated cases and production data apart (issue #21 item 2; docs/architecture-data.md).

One fixture: production turns with events, then reviewed generated cases (an LLM run whose model
has the production model's name, and an offline run) with events of their own. Every production
consumer must give the same numbers after the generated cases arrived as before: signal detection,
signal rates, strata counts, failure candidates, release rates, the rollup, releases_from_models and
the API list. If any of them counted a generated case, its numbers would move.
"""
import json

import pytest
from django.utils import timezone

from evaluation.models import TurnDayCount
from evaluation.selectors.rates import production_rates, production_rates_many
from evaluation.services.rollup import turn_day_counts_refresh
from generation import services as generation
from labelling.models import Annotation, BatchItem, LabelStudioProject
from labelling.selectors import failure_candidates_unsent, strata_production_counts
from labelling.services.review import ReviewCase, review_batch_create, review_cases_add
from labelling.vocabulary import GENERATED
from production import selectors as production
from production.models import Turn, TurnSignals
from production.services.ingest import source_get_or_create, turns_ingest_body
from production.services.signals import signals_detect
from releases.models import Release
from releases.selectors import release_list, release_serving_span
from releases.services import releases_from_models
from tests.test_generation import GOOD, failures, fake_llm, review_project  # noqa: F401 (fixtures)

MODEL = "bot-v1"  # what production serves, and the name of the LLM that writes cases

PRODUCTION_LOG = [
    {"id": "p1", "session_id": "ps1", "timestamp": "2026-10-02T09:00:00Z", "query": "How do I reset my password?",
     "response": "Check your spam folder.", "model": MODEL},
    {"id": "p2", "session_id": "ps1", "timestamp": "2026-10-02T09:00:40Z",
     "query": "password reset link never arrives", "response": "Use 'Forgot password'.", "model": MODEL},
    {"type": "event", "turn_id": "p2", "event": {"type": "human_override", "corrected_response": "It expires."}},
    {"id": "p3", "session_id": "ps2", "timestamp": "2026-10-03T10:00:00Z", "query": "Do you ship to Norway?",
     "response": "Yes, in 5 days.", "model": MODEL, "events": [{"type": "thumbs_up"}, {"type": "copy"}]},
    {"id": "p4", "session_id": "ps3", "timestamp": "2026-10-03T11:00:00Z", "query": "Is the Munich store open?",
     "response": "From 9 to 8.", "model": MODEL, "events": [{"type": "thumbs_down"}]},
    {"id": "p5", "session_id": "ps3", "timestamp": "2026-10-03T11:01:00Z", "query": "and on Sunday?",
     "response": "No.", "model": MODEL},
    {"id": "p6", "session_id": "ps4", "timestamp": "2026-10-04T12:00:00Z", "query": "Refund for order 77?",
     "response": "Refunds take 3 days.", "model": "bot-v2", "events": [{"type": "escalation"}]},
]


def jsonl(rows) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def production_numbers() -> dict:
    """What each production consumer says, after detection and a rollup refresh."""
    signals_detect()
    turn_day_counts_refresh(full=True)
    made = releases_from_models(user="test")
    releases = list(release_list().order_by("name"))
    return {
        "detection": sorted(TurnSignals.objects.values_list("turn_id", flat=True)),
        "signal_rates_overall": production.signal_rates_overall(),
        "signal_rates_daily": production.signal_rates_daily(),
        "signal_rates_by_model": production.signal_rates_by_model(),
        "strata_counts": strata_production_counts(),
        "failure_candidates": [t.pk for t in production.failure_candidates()],
        "failure_candidates_unsent": sorted(failure_candidates_unsent().values_list("pk", flat=True)),
        "releases_from_models": sorted(r.name for r, _ in made),
        "releases": [r.name for r in releases],
        "production_rates": {r.name: production_rates(r) for r in releases},
        # the gate's form: explicit days, here up to today (when the generated cases are written)
        "production_rates_dated": {r.name: production_rates(r, start="2026-10-01", end=timezone.now().date())
                                   for r in releases},
        "serving_span": {r.name: release_serving_span(r) for r in releases},
        "production_rates_many": production_rates_many(releases),
        "rollup": sorted(TurnDayCount.objects.values_list("key", "source_id", "day", "turns", "detected",
                                                          "failure_candidate")),
        "turn_list": list(production.turn_list().values_list("pk", flat=True)),
        "session_list": list(production.session_list().values_list("pk", "turn_count")),
        "event_list": list(production.event_list().values_list("pk", flat=True)),
        "holdings": {k: v for k, v in production.holdings_report().items() if k in ("turns", "models")},
        "holdings_sources": {s["name"]: s["turn_count"] for s in production.holdings_report()["sources"]
                             if s["turn_count"]},
    }


@pytest.mark.django_db
def test_no_generated_case_reaches_a_production_number(failures, fake_llm):  # noqa: F811
    # given: production turns, their signals, and what every consumer makes of them
    shop = source_get_or_create(name="shop-bot")
    turns_ingest_body(source=shop, body=jsonl(PRODUCTION_LOG))
    before = production_numbers()
    assert before["failure_candidates"] and before["detection"] and before["releases"] == ["bot-v1", "bot-v2"]
    assert before["production_rates"]["bot-v1"]["detected"] == 5

    # when: two generation runs write cases for review (one names the production model, one is "offline"),
    # reviewers judge them, and events arrive for them
    fake_llm.script = [("ok", GOOD)]
    kept = 0
    for kw in ({"model": MODEL}, {"offline": True}):
        run = generation.generation_run_create(failure_mode="INTENT", n=3, **kw)
        generation.generation_run_execute(run_id=run.pk)
        run.refresh_from_db()
        # the offline run perturbs its seeds with a generator seeded by the run's id (another id in a
        # full suite than alone), and near-identical perturbations are de-duplicated: what it keeps varies
        assert run.generated - run.duplicates_dropped >= 1
        kept += run.generated - run.duplicates_dropped
    generated = list(Turn.objects.generated())
    assert len(generated) == kept and {t.model for t in generated} == {MODEL, "offline"}
    project = LabelStudioProject.objects.create(title="review", ls_project_id=990_001)
    for item in BatchItem.objects.filter(stratum=GENERATED):
        Annotation.objects.create(ls_annotation_id=700_000 + item.pk, project=project, item=item,
                                  ls_task_id=item.pk, verdict="incorrect", failure_modes=["INTENT"])
    review = source_get_or_create(name=GENERATED)
    turns_ingest_body(source=review, body=jsonl(
        {"type": "event", "turn_id": t.external_id, "event": {"type": "thumbs_down"}} for t in generated))
    after = production_numbers()

    # then: every consumer's numbers are the production-only ones
    for consumer, numbers in before.items():
        assert after[consumer] == numbers, consumer
    assert not TurnSignals.objects.filter(turn__kind=Turn.Kind.GENERATED).exists()
    assert not Release.objects.filter(name="offline").exists()
    # and the cases are still there for review and promotion
    assert BatchItem.objects.filter(stratum=GENERATED, turn__in=generated).count() == len(generated)


@pytest.mark.django_db
def test_review_cases_of_before_the_kind_are_marked_again_and_lose_their_signals():
    # given: a review turn written as a production one (as before turns had a kind), with signals
    review = source_get_or_create(name=GENERATED)
    turns_ingest_body(source=review, body=jsonl([{"id": "gen-1-0", "session_id": "gen-1-0", "query": "q?", "response": "a.",
                                                  "timestamp": "2026-10-02T09:00:00Z", "model": MODEL,
                                                  "events": [{"type": "thumbs_down"}]}]))
    signals_detect()
    assert TurnSignals.objects.filter(turn__external_id="gen-1-0").exists()

    # when: review adds it again (a re-run)
    ids = review_cases_add(batch_id=review_batch_create(project_title="r"),
                           cases=[ReviewCase(key="gen-1-0", query="q?", model=MODEL)])

    # then: it is a generated turn without signals, and stays so after detection runs again
    signals_detect(full=True)
    turn = Turn.objects.get(pk=ids["gen-1-0"])
    assert turn.kind == Turn.Kind.GENERATED
    assert not TurnSignals.objects.filter(turn=turn).exists()
    assert Turn.objects.production().filter(pk=turn.pk).count() == 0


@pytest.mark.django_db(transaction=True)
def test_detection_outside_a_transaction_skips_generated_turns():
    """On PostgreSQL this is the pipelined path, whose turn and event reads are SQL of their own."""
    # given: a production turn and a review case, each with a thumbs-down
    shop = source_get_or_create(name="shop-bot")
    turns_ingest_body(source=shop, body=jsonl([r for r in PRODUCTION_LOG if r.get("id") == "p4"]))
    review_cases_add(batch_id=review_batch_create(project_title="r"), cases=[ReviewCase(key="gen-1-0", query="q?",
                                                                                       model=MODEL)])
    turns_ingest_body(source=source_get_or_create(name=GENERATED), body=jsonl(
        [{"type": "event", "turn_id": "gen-1-0", "event": {"type": "thumbs_down"}}]))

    # when
    signals_detect(full=True, batch_sessions=1)

    # then: only the production turn has signals
    assert list(TurnSignals.objects.values_list("turn__external_id", "thumbs_down")) == [("p4", True)]
