"""Signals on hand-checked sessions copied from the real example log (examples/canard_log.jsonl)."""
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from production.models import Session, TurnSignals

REPO = Path(__file__).resolve().parent.parent
# A CANARD dialog about the band Saosin: turn 4 got "I don't know." and the user re-asked it with
# the context spelled out (CANARD's human rewrite) as turn 4r.
SAOSIN = "canard-C_b0e3f298b1f64843bb1286bb3e019e8e_1"


def session_lines(session_id: str) -> list[dict]:
    out = []
    with open(REPO / "examples" / "canard_log.jsonl", encoding="utf-8") as f:
        for rec in map(json.loads, f):
            if rec.get("session_id") == session_id or rec.get("turn_id", "").startswith(session_id + "-"):
                out.append(rec)
    return out


def ingest_records(tmp_path, records, name="log.jsonl", source="canard"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    call_command("ingest", str(path), "--source", source, stdout=io.StringIO())


def detect() -> dict:
    out = io.StringIO()
    call_command("detect_signals", "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def signals_of(turn_id: str) -> TurnSignals:
    return TurnSignals.objects.select_related("turn").get(turn__external_id=turn_id)


def flags_of(turn_id: str) -> set[str]:
    return {k for k, v in signals_of(turn_id).flags().items() if v}


@pytest.fixture
def saosin(db, tmp_path):
    ingest_records(tmp_path, session_lines(SAOSIN))
    return detect()


def test_each_turn_of_a_real_session_gets_the_signals_of_what_happened_next(saosin):
    assert saosin["sessions"] == 1 and saosin["turns"] == 8
    assert flags_of(f"{SAOSIN}-1") == {"followed_up"}
    assert flags_of(f"{SAOSIN}-3") == {"escalated", "followed_up"}      # "I don't know.", then a new question
    assert flags_of(f"{SAOSIN}-4") == {"escalated", "rephrased"}        # re-asked as "Did Saosin play any shows?"
    assert flags_of(f"{SAOSIN}-4r") == {"escalated", "followed_up"}
    assert flags_of(f"{SAOSIN}-7") == {"abandoned"}                      # the session ends here
    assert signals_of(f"{SAOSIN}-4").failure_candidate
    assert not signals_of(f"{SAOSIN}-1").failure_candidate
    assert flags_of(f"{SAOSIN}-2") == {"followed_up"}  # "Was their first album popular?" -> "What songs ...?"
    assert flags_of(f"{SAOSIN}-5") == {"followed_up"}
    # Turn 6 -> 7 ("What did they do after the tour?" -> "What band did Anthony Green form after
    # leaving?") is a follow-up that the detector scores as a rephrase: a known false positive,
    # pinned here so that a change in it is seen (and counted in the detector's reported numbers).
    assert flags_of(f"{SAOSIN}-6") == {"rephrased"}
    assert signals_of(f"{SAOSIN}-6").failure_candidate
    assert saosin["abandoned"] == 1


def test_evidence_says_why(saosin):
    ev = signals_of(f"{SAOSIN}-4").evidence
    assert ev["rephrased"]["next_turn_id"] == f"{SAOSIN}-4r"
    assert ev["rephrased"]["next_query"] == "Did Saosin play any shows?"
    assert ev["rephrased"]["gap_seconds"] == pytest.approx(28.0, abs=0.01)  # 00:15:11.407 -> 00:15:39.407
    assert ev["rephrased"]["similarity"] >= ev["rephrased"]["threshold"]
    assert ev["escalated"][0]["actor"] == "handoff"
    follow = signals_of(f"{SAOSIN}-1").evidence["followed_up"]
    assert follow["next_turn_id"] == f"{SAOSIN}-2" and follow["similarity"] < follow["threshold"]
    assert signals_of(f"{SAOSIN}-7").evidence["abandoned"] == {"last_turn_of_session": True}


def test_a_human_override_a_day_later_flips_the_turn_and_only_its_session_is_redone(saosin, tmp_path):
    # given: another session, already detected
    ingest_records(tmp_path, session_lines("canard-C_2d211835213b45588ad5ca868ce7fabd_0"), name="zappa.jsonl")
    assert detect()["sessions"] == 1
    assert not signals_of(f"{SAOSIN}-1").human_override
    # when: an agent's override of turn 1 arrives a day later
    ts = signals_of(f"{SAOSIN}-1").turn.timestamp + timedelta(days=1)
    ingest_records(tmp_path, [{"type": "event", "turn_id": f"{SAOSIN}-1", "event": {
        "type": "human_override", "corrected_response": "Saosin formed in 2003 in Orange County.", "actor": "agent-3",
        "timestamp": ts.isoformat()}}], name="late.jsonl")
    result = detect()
    # then
    assert result["sessions"] == 1
    sig = signals_of(f"{SAOSIN}-1")
    assert sig.human_override and sig.failure_candidate
    assert sig.corrected_response == "Saosin formed in 2003 in Orange County."
    assert sig.evidence["human_override"][0]["actor"] == "agent-3"
    assert not Session.objects.filter(dirty=True).exists()


def test_a_copy_is_a_positive_event_so_the_last_answer_is_not_abandoned(saosin, tmp_path):
    ingest_records(tmp_path, [{"type": "event", "turn_id": f"{SAOSIN}-7", "event": {"type": "copy"}}], name="c.jsonl")
    detect()
    assert flags_of(f"{SAOSIN}-7") == {"copied"}


@override_settings(SIGNALS_WINDOW_SECONDS=60)
def test_the_window_comes_from_settings(db, tmp_path):
    ingest_records(tmp_path, session_lines(SAOSIN))
    detect()
    # turn 3's answer was served at 00:13:52.978 and the next query came 78 s later: past a 60 s window
    assert flags_of(f"{SAOSIN}-3") == {"escalated", "abandoned"}
    assert signals_of(f"{SAOSIN}-3").evidence["abandoned"]["gap_seconds"] == pytest.approx(78.0, abs=0.01)
    assert flags_of(f"{SAOSIN}-4") == {"escalated", "rephrased"}  # 28 s: still inside


@override_settings(SIGNALS_REPHRASE_THRESHOLD=1.01, SIGNALS_FAILURE_ON_ESCALATION=False)
def test_threshold_and_failure_rules_come_from_settings(db, tmp_path):
    ingest_records(tmp_path, session_lines(SAOSIN))
    detect()
    sig = signals_of(f"{SAOSIN}-4")
    assert sig.followed_up and not sig.rephrased
    assert sig.evidence["followed_up"]["threshold"] == 1.01
    assert not sig.failure_candidate  # escalated only, and escalation is not a failure by this setting


def test_failures_and_daily_rates_api(saosin, api):
    failures = api.get("/api/failures/").json()["results"]
    # turn 6 is the detector's known false positive (see above), listed like the true failures
    assert {f["turn_id"] for f in failures} == {f"{SAOSIN}-3", f"{SAOSIN}-4", f"{SAOSIN}-4r", f"{SAOSIN}-6"}
    f4 = next(f for f in failures if f["turn_id"] == f"{SAOSIN}-4")
    assert f4["signals"]["rephrased"] and f4["evidence"]["rephrased"]["next_turn_id"] == f"{SAOSIN}-4r"
    daily = api.get("/api/signals/daily/").json()
    # rates are exactly the stored flags over the day's turns
    flags = [s.flags() for s in TurnSignals.objects.all()]
    expected = {f"{name}_rate": sum(f[name] for f in flags) / 8 for name in flags[0]}
    expected["failures_rate"] = TurnSignals.objects.filter(failure_candidate=True).count() / 8
    assert len(daily) == 1
    row = daily[0]
    assert (row["date"], row["model"], row["turns"]) == ("2026-09-01", "quac-span-answerer", 8)
    assert {k: row[k] for k in expected} == pytest.approx(expected)
    assert row["escalated_rate"] == 0.375 and row["abandoned_rate"] == 0.125
    by_day = api.get("/api/signals/daily/?by_model=false").json()
    assert by_day[0]["turns"] == 8 and "model" not in by_day[0]


def test_export_turns_writes_one_object_per_turn_with_signals(saosin, tmp_path):
    out = tmp_path / "turns.jsonl"
    call_command("export_turns", "--output", str(out), stdout=io.StringIO())
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 8
    row = next(r for r in rows if r["id"] == f"{SAOSIN}-4")
    assert {"id", "source", "session_id", "timestamp", "query", "response", "signals"} <= set(row)
    assert (row["source"], row["session_id"], row["query"]) == ("canard", SAOSIN, "Did they play any shows?")
    sig = row["signals"]
    assert {k for k in ("rephrased", "followed_up", "abandoned", "copied", "thumbs_up", "thumbs_down", "escalated",
                        "human_override") if sig[k]} == {"rephrased", "escalated"}
    assert sig["evidence"]["rephrased"]["next_turn_id"] == f"{SAOSIN}-4r"


def test_evaluate_detectors_command_prints_the_per_set_table():
    out = io.StringIO()
    call_command("evaluate_detectors", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert set(report["sets"]) >= {"canard", "hint3"}
    assert report["sets"]["canard"]["meets_target"] and report["sets"]["hint3"]["meets_target"]
