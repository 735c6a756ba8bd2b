"""Builders for the release-gate tests: two releases, a frozen test set with both scored on it,
judged shadow pairs, and a canary's served turns next to the baseline's — straight into the
database (no LLM, no Label Studio), plus a small policy file."""
from __future__ import annotations

import io
import json
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

from django.core.management import call_command
from django.utils import timezone

from evaluation.models import OfflineRun, OfflineScore
from tests import evaluation_helpers as ev
from tests.shadow_helpers import make_pairs, taxonomy

DAY0 = date(2026, 10, 1)
SERVED_MODEL = "served-model"  # the model make_pairs' served turns carry: the baseline's

# Small horizons, so that a test's few hundred pairs and turns are enough to decide.
TEST_POLICY = {"min_shadow_pairs": 200, "min_shadow_days": 2, "shadow_window_days": 14,
               "min_ab_turns": 300, "min_ab_days": 2, "ab_window_days": 14}


def policy_file(tmp_path: Path, **overrides) -> Path:
    import yaml

    path = tmp_path / "gate-policy.yaml"
    path.write_text(yaml.safe_dump({**TEST_POLICY, **overrides}, sort_keys=False))
    return path


SEED_CRITICAL = __import__("importlib").import_module("taxonomy.migrations.0006_seed_critical_modes").seed_critical


def critical_taxonomy() -> None:
    """The migrated taxonomy with its critical modes, also after a transactional test flushed it."""
    from django.apps import apps as django_apps

    taxonomy()
    SEED_CRITICAL(django_apps, None)


def releases():
    critical_taxonomy()
    base = ev.release("base", model=SERVED_MODEL)
    cand = ev.release("cand", model="cand-model")
    return cand, base


def testset(name: str = "support-qa", items: int = 100):
    return ev.frozen_version(name, [{"key": f"item-{i:03d}", "query": f"question {i}"} for i in range(items)])


def scored(cand_correct: int = 82, base_correct: int = 80):
    """cand and base, both scored on support-qa v1 (the latest frozen version): (cand, base, v1)."""
    cand, base = releases()
    v1 = testset()
    offline_run(cand, v1, cand_correct)
    offline_run(base, v1, base_correct)
    return cand, base, v1


def offline_run(release, version, correct: int, *, grader: str = "grader-x") -> OfflineRun:
    """A finished graded run: the first `correct` items score 1, the rest 0."""
    items = list(version.items.order_by("key"))
    scores = [1.0 if i < correct else 0.0 for i in range(len(items))]
    mean = sum(scores) / len(scores)
    run = OfflineRun.objects.create(release=release, version=version, mode=OfflineRun.Mode.GENERATE,
                                    grader_model=grader, status=OfflineRun.Status.DONE, score=mean,
                                    ci_low=mean - 0.08, ci_high=mean + 0.08, items=len(items),
                                    finished_at=timezone.now())
    OfflineScore.objects.bulk_create([OfflineScore(run=run, key=it.key, item=it, score=s,
                                                   verdict="correct" if s else "incorrect")
                                      for it, s in zip(items, scores)])
    return run


def shadow_days(release, days: int, wins: int, losses: int, ties: int = 0, *, modes=None, start: date = DAY0):
    """Each of `days` days: `wins` candidate wins, `losses` served wins, `ties` ties (one pair per
    conversation). `modes(day_index, i)` -> (candidate codes, served codes) for the i-th pair of a day."""
    for d in range(days):
        day = start + timedelta(days=d)
        outcomes = ["candidate_win"] * wins + ["served_win"] * losses + ["tie"] * ties
        per = {i: modes(d, i) for i in range(len(outcomes))} if modes else None
        make_pairs(release, {day: outcomes}, modes=per, source=f"pairs-{d}")


def served_turns(model: str, n: int, day: date, *, release: str | None = None, failures: int = 0,
                 signals: dict | None = None, src: str = "shop", per_session: int = 3, users: int | None = None,
                 tag: str = "") -> None:
    """`n` detected turns served by `model` on `day`, in conversations of `per_session` turns (turn i
    in conversation i % (n / per_session), so flags on the first turns spread over conversations);
    with `users`, turn i is logged with user_id u{i % users}. The first `failures` are failure
    candidates; signals {name: k}: the first k carry that flag."""
    from production.models import SIGNAL_NAMES, Session, Turn, TurnSignals

    s = ev.source(src)
    key = f"{tag}-{model}-{release or ''}-{day}"
    sessions = Session.objects.bulk_create([Session(source=s, external_id=f"{key}-s{j}")
                                            for j in range(max(1, n // per_session))])
    start = datetime.combine(day, time(9, 0), tzinfo=dt_timezone.utc)
    rows = Turn.objects.bulk_create([
        Turn(source=s, session=sessions[i % len(sessions)], external_id=f"{key}-t{i}",
             timestamp=start + timedelta(seconds=i), query=f"question {i}", response=f"answer {i}", model=model,
             user_id=f"u{i % users}" if users else "", metadata={"release": release} if release else {})
        for i in range(n)])
    TurnSignals.objects.bulk_create([
        TurnSignals(turn=t, failure_candidate=i < failures,
                    **{name: i < (signals or {}).get(name, 0) for name in SIGNAL_NAMES})
        for i, t in enumerate(rows)])


def canary(candidate, baseline, days: int, n: int, *, cand_signals=None, base_signals=None, cand_failures=0,
           base_failures=0, start: date = DAY0, base_n: int | None = None, users: int | None = None):
    """`n` turns a day for `days` days served by each (`base_n` by the baseline if given), in
    conversations of 3 turns: the candidate's carry metadata.release."""
    for d in range(days):
        day = start + timedelta(days=d)
        served_turns(candidate.model, n, day, release=candidate.name, failures=cand_failures,
                     signals=cand_signals, users=users, tag="cand")
        served_turns(baseline.model, n if base_n is None else base_n, day, failures=base_failures,
                     signals=base_signals, users=users, tag="base")


def decide_under(path: Path, *args) -> tuple[int, dict]:
    """release_gate --json with the server's policy file (GATE_POLICY_FILE) at `path`: the floor a
    --policy may only tighten (the tests' small horizons are looser than the settings')."""
    from django.test import override_settings

    with override_settings(GATE_POLICY_FILE=str(path)):
        return gate_json(*args)


def gate(*args) -> tuple[int, str]:
    """Run release_gate; (exit code, stdout)."""
    out = io.StringIO()
    code = 0
    try:
        call_command("release_gate", *args, stdout=out, stderr=io.StringIO())
    except SystemExit as e:
        code = e.code
    return code, out.getvalue()


def gate_json(*args) -> tuple[int, dict]:
    code, out = gate(*args, "--json")
    return code, json.loads(out.strip().splitlines()[-1])


def pair_costs(release, *, cand_latency: float, served_latency: float, cand_cost: float | None = None,
               served_cost: float | None = None) -> None:
    """Latency (ms) and cost ($) on both answers of the release's pairs, spread ±20 % around the given
    values the same way on both sides (turn i: x * (0.8 + 0.4 * (i % 11) / 10)); the served cost in the
    turn's metadata.cost_usd, as a log carries it."""
    from shadow.models import ShadowPair

    pairs = list(ShadowPair.objects.filter(release=release).select_related("turn").order_by("id"))
    turns = []
    for i, p in enumerate(pairs):
        f = 0.8 + 0.4 * (i % 11) / 10
        p.latency_ms, p.turn.latency_ms = cand_latency * f, served_latency * f
        if cand_cost is not None:
            p.cost_usd = round(cand_cost * f, 6)
        if served_cost is not None:
            p.turn.metadata = {**p.turn.metadata, "cost_usd": round(served_cost * f, 6)}
        turns.append(p.turn)
    ShadowPair.objects.bulk_update(pairs, ["latency_ms", "cost_usd"])
    type(turns[0]).objects.bulk_update(turns, ["latency_ms", "metadata"])
