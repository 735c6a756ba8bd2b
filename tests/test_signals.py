"""Signals on hand-checked sessions copied from the real example log (examples/canard_log.jsonl)."""
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from production import selectors
from production.models import Session, Turn, TurnSignals
from production.signal_definitions import CHANGELOG, DEFINITION_VERSION, SIGNAL_NAMES

REPO = Path(__file__).resolve().parent.parent
# A CANARD dialog about the band Saosin: turn 4 got "I don't know." and the user re-asked it with
# the context spelled out (CANARD's human rewrite) as turn 4r.
SAOSIN = "canard-C_b0e3f298b1f64843bb1286bb3e019e8e_1"
ZAPPA = "canard-C_2d211835213b45588ad5ca868ce7fabd_0"


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


def event_line(turn_id: str, **event) -> dict:
    return {"type": "event", "turn_id": turn_id, "event": event}


def detect(*args) -> dict:
    out = io.StringIO()
    call_command("detect_signals", "--json", *args, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def signals_of(turn_id: str) -> TurnSignals:
    return TurnSignals.objects.select_related("turn").get(turn__external_id=turn_id)


def flags_of(turn_id: str) -> set[str]:
    return {k for k, v in signals_of(turn_id).flags().items() if v}


def answered_at(turn_id: str):
    return Turn.objects.get(external_id=turn_id).response_timestamp


@pytest.fixture
def saosin(db, tmp_path):
    ingest_records(tmp_path, session_lines(SAOSIN))
    return detect()


def test_each_turn_of_a_real_session_gets_the_signals_of_what_happened_next(saosin):
    assert saosin["sessions"] == 1 and saosin["turns"] == 8
    assert flags_of(f"{SAOSIN}-1") == {"followed_up"}
    assert flags_of(f"{SAOSIN}-2") == {"followed_up"}  # "Was their first album popular?" -> "What songs ...?"
    assert flags_of(f"{SAOSIN}-3") == {"escalated", "followed_up"}      # "I don't know.", then a new question
    assert flags_of(f"{SAOSIN}-4") == {"escalated", "rephrased"}        # re-asked as "Did Saosin play any shows?"
    assert flags_of(f"{SAOSIN}-4r") == {"escalated", "followed_up"}
    assert flags_of(f"{SAOSIN}-5") == {"followed_up"}
    # "What did they do after the tour?" -> "What band did Anthony Green form after leaving?": a topical
    # follow-up (the previous detector's false positive); P(re-ask) stays under the threshold at the prior.
    assert flags_of(f"{SAOSIN}-6") == {"followed_up"}
    # The session ends here with no sign the user left unhappy: neutral, not abandoned.
    assert flags_of(f"{SAOSIN}-7") == {"session_ended"}
    assert signals_of(f"{SAOSIN}-4").failure_candidate
    assert not signals_of(f"{SAOSIN}-1").failure_candidate
    assert flags_of(f"{SAOSIN}-2") == {"followed_up"}  # "Was their first album popular?" -> "What songs ...?"
    assert (saosin["abandoned"], saosin["session_ended"], saosin["rephrased"]) == (0, 1, 1)
    assert saosin["definition_version"] == DEFINITION_VERSION


def test_evidence_says_why(saosin):
    ev = signals_of(f"{SAOSIN}-4").evidence
    re_ask = ev["rephrased"]
    assert re_ask["next_turn_id"] == f"{SAOSIN}-4r"
    assert re_ask["next_query"] == "Did Saosin play any shows?"
    assert re_ask["gap_seconds"] == pytest.approx(28.0, abs=0.01)  # 00:15:11.407 -> 00:15:39.407
    assert re_ask["probability"] >= re_ask["threshold"] and re_ask["prior"] == 0.1
    assert re_ask["stage"] == "semantic" and 0 < re_ask["cosine"] <= 1
    # the probability at the 0.1 base rate is the balanced score's odds times 0.1 / 0.9
    odds = re_ask["score"] / (1 - re_ask["score"]) / 9
    assert re_ask["probability"] == pytest.approx(odds / (1 + odds), abs=1e-3)
    assert ev["escalated"][0]["actor"] == "handoff"
    follow = signals_of(f"{SAOSIN}-1").evidence["followed_up"]
    assert follow["next_turn_id"] == f"{SAOSIN}-2" and follow["probability"] < follow["threshold"]
    assert signals_of(f"{SAOSIN}-7").evidence["session_ended"] == {"last_turn_of_session": True}


def test_a_leave_event_right_after_the_last_answer_is_abandonment(saosin, tmp_path):
    # when: the client reports the user navigated away 40 s after the last answer
    ts = answered_at(f"{SAOSIN}-7") + timedelta(seconds=40)
    ingest_records(tmp_path, [event_line(f"{SAOSIN}-7", type="navigate_away", timestamp=ts.isoformat())],
                   name="leave.jsonl")
    assert detect()["sessions"] == 1
    # then
    assert flags_of(f"{SAOSIN}-7") == {"abandoned"}
    ev = signals_of(f"{SAOSIN}-7").evidence["abandoned"]
    assert (ev["event"], ev["on_turn_id"], ev["seconds_after_answer"], ev["abandon_seconds"]) == (
        "navigate_away", f"{SAOSIN}-7", pytest.approx(40.0), 120)
    assert not signals_of(f"{SAOSIN}-7").failure_candidate  # abandonment is reported, not a failure by itself


def test_a_leave_event_later_than_the_abandon_window_is_only_a_session_end(saosin, tmp_path):
    ts = answered_at(f"{SAOSIN}-7") + timedelta(seconds=121)
    ingest_records(tmp_path, [event_line(f"{SAOSIN}-7", type="close", timestamp=ts.isoformat())], name="l.jsonl")
    detect()
    assert flags_of(f"{SAOSIN}-7") == {"session_ended"}


def test_an_untimed_leave_event_is_no_evidence_of_leaving_right_after(saosin, tmp_path):
    ingest_records(tmp_path, [event_line(f"{SAOSIN}-7", type="navigate_away")], name="l.jsonl")
    detect()
    assert flags_of(f"{SAOSIN}-7") == {"session_ended"}


@override_settings(SIGNALS_WINDOW_SECONDS=60)
def test_leaving_is_read_from_the_whole_session_and_only_before_the_next_query(db, tmp_path):
    # given: a 60 s window, so turn 3 (next query 78 s after its answer) has no reaction
    ingest_records(tmp_path, session_lines(SAOSIN))
    answered = answered_at(f"{SAOSIN}-3")
    # when: the client attached a close event to turn 2 (elsewhere in the session), 30 s after turn 3's answer,
    # i.e. the user's next activity after that answer; and a navigate_away on turn 1 after turn 4 was asked
    ingest_records(tmp_path, [
        event_line(f"{SAOSIN}-2", type="close", timestamp=(answered + timedelta(seconds=30)).isoformat()),
        event_line(f"{SAOSIN}-1", type="navigate_away", timestamp=(answered + timedelta(seconds=90)).isoformat()),
    ], name="elsewhere.jsonl")
    detect()
    # then
    assert flags_of(f"{SAOSIN}-3") == {"escalated", "abandoned"}
    ev = signals_of(f"{SAOSIN}-3").evidence["abandoned"]
    assert (ev["event"], ev["on_turn_id"], ev["seconds_after_answer"]) == ("close", f"{SAOSIN}-2", pytest.approx(30.0))
    # turn 2's next query came 99 s later (no reaction in 60 s) and both leave events followed that query:
    # no evidence it was left
    assert flags_of(f"{SAOSIN}-2") == {"session_ended"}
    # the navigate_away came 12 s after turn 4's answer, but the user re-asked within the window: a reaction wins
    assert flags_of(f"{SAOSIN}-4") == {"escalated", "rephrased"}


def test_a_copy_is_a_positive_event_so_the_last_answer_neither_ends_nor_is_abandoned(saosin, tmp_path):
    ts = answered_at(f"{SAOSIN}-7") + timedelta(seconds=20)
    ingest_records(tmp_path, [event_line(f"{SAOSIN}-7", type="copy"),
                              event_line(f"{SAOSIN}-7", type="navigate_away", timestamp=ts.isoformat())],
                   name="c.jsonl")
    detect()
    assert flags_of(f"{SAOSIN}-7") == {"copied"}


def test_every_row_carries_the_definition_version_and_old_rows_are_redone(saosin):
    assert set(TurnSignals.objects.values_list("definition_version", flat=True)) == {DEFINITION_VERSION}
    assert [v for v, _ in CHANGELOG] == list(range(1, DEFINITION_VERSION + 1))
    # given: rows written under version 1 (as a database migrated from before versions holds them)
    TurnSignals.objects.update(definition_version=1)
    assert selectors.signal_rates_overall()["versions"] == {1: 8}
    # when
    detect("--full")
    # then
    assert selectors.signal_rates_overall()["versions"] == {DEFINITION_VERSION: 8}


def test_rates_keep_version_1_abandonment_comparable(saosin, tmp_path):
    ts = answered_at(f"{SAOSIN}-7") + timedelta(seconds=5)
    ingest_records(tmp_path, session_lines(ZAPPA) + [
        event_line(f"{SAOSIN}-7", type="navigate_away", timestamp=ts.isoformat())], name="z.jsonl")
    detect()
    rates = selectors.signal_rates_overall()
    rows = list(TurnSignals.objects.all())
    n = len(rows)
    assert rates["turns"] == n
    assert rates["abandoned_rate"] == round(sum(r.abandoned for r in rows) / n, 4) and rates["abandoned_rate"] > 0
    assert rates["session_ended_rate"] == round(sum(r.session_ended for r in rows) / n, 4)
    # version 1's "abandoned" (no reaction, no copy / thumbs-up) == v2 abandoned + session_ended, turn for turn
    v1 = [not (r.rephrased or r.followed_up or r.copied or r.thumbs_up) for r in rows]
    assert [r.abandoned or r.session_ended for r in rows] == v1
    assert not any(r.abandoned and r.session_ended for r in rows)
    assert rates["no_reaction_rate"] == round(sum(v1) / n, 4)


def test_failure_candidates_are_ordered_by_their_probability(saosin, tmp_path, api):
    # given: two more sessions and explicit events of known weight
    ingest_records(tmp_path, session_lines(ZAPPA) + [
        event_line(f"{ZAPPA}-1", type="human_override", corrected_response="The Mothers of Invention.",
                   actor="agent-1"),
        event_line(f"{ZAPPA}-2", type="thumbs_down"),
    ], name="z.jsonl")
    detect()
    # then: each probability is the noisy-OR of its evidence
    def p_reask(sig):
        ev = sig.evidence.get("rephrased") or sig.evidence.get("followed_up")
        return ev["probability"] if ev else 0.0

    for sig in TurnSignals.objects.filter(failure_candidate=True):
        not_failed = 1 - p_reask(sig)
        for name, p in (("human_override", 0.95), ("thumbs_down", 0.7), ("escalated", 0.6)):
            if getattr(sig, name):
                not_failed *= 1 - p
        assert sig.failure_probability == pytest.approx(1 - not_failed, abs=2e-4), sig.turn_id  # evidence rounds to 1e-4
    assert signals_of(f"{SAOSIN}-4").failure_probability > 0.98  # re-asked and escalated
    # the API lists candidates strongest first
    failures = api.get("/api/failures/").json()["results"]
    probs = [f["failure_probability"] for f in failures]
    assert probs == sorted(probs, reverse=True) and len(set(probs)) > 3
    assert {f["turn_id"] for f in failures} == set(
        TurnSignals.objects.filter(failure_candidate=True).values_list("turn__external_id", flat=True))
    assert failures[0]["turn_id"] == f"{SAOSIN}-4"
    assert all(f["definition_version"] == DEFINITION_VERSION for f in failures)
    top = selectors.top_rephrased_failures(limit=5)
    assert [t.external_id for t in top] == [f["turn_id"] for f in failures if f["signals"]["rephrased"]][:5]


def test_a_human_override_a_day_later_flips_the_turn_and_only_its_session_is_redone(saosin, tmp_path):
    # given: another session, already detected
    ingest_records(tmp_path, session_lines(ZAPPA), name="zappa.jsonl")
    assert detect()["sessions"] == 1
    assert not signals_of(f"{SAOSIN}-1").human_override
    # when: an agent's override of turn 1 arrives a day later
    ts = signals_of(f"{SAOSIN}-1").turn.timestamp + timedelta(days=1)
    ingest_records(tmp_path, [event_line(f"{SAOSIN}-1", type="human_override", actor="agent-3",
                                         corrected_response="Saosin formed in 2003 in Orange County.",
                                         timestamp=ts.isoformat())], name="late.jsonl")
    result = detect()
    # then
    assert result["sessions"] == 1
    sig = signals_of(f"{SAOSIN}-1")
    assert sig.human_override and sig.failure_candidate
    assert sig.corrected_response == "Saosin formed in 2003 in Orange County."
    assert sig.evidence["human_override"][0]["actor"] == "agent-3"
    assert not Session.objects.filter(dirty=True).exists()


@override_settings(SIGNALS_WINDOW_SECONDS=60)
def test_the_window_comes_from_settings(db, tmp_path):
    ingest_records(tmp_path, session_lines(SAOSIN))
    detect()
    # turn 3's answer was served at 00:13:52.978 and the next query came 78 s later: past a 60 s window
    assert flags_of(f"{SAOSIN}-3") == {"escalated", "session_ended"}
    ev = signals_of(f"{SAOSIN}-3").evidence["session_ended"]
    assert ev["gap_seconds"] == pytest.approx(78.0, abs=0.01) and ev["next_turn_id"] == f"{SAOSIN}-4"
    assert flags_of(f"{SAOSIN}-4") == {"escalated", "rephrased"}  # 28 s: still inside


@override_settings(SIGNALS_REPHRASE_THRESHOLD=0.999, SIGNALS_FAILURE_ON_ESCALATION=False)
def test_threshold_and_failure_rules_come_from_settings(db, tmp_path):
    ingest_records(tmp_path, session_lines(SAOSIN))
    detect()
    sig = signals_of(f"{SAOSIN}-4")
    assert sig.followed_up and not sig.rephrased
    assert sig.evidence["followed_up"]["threshold"] == 0.999
    assert not sig.failure_candidate  # escalated only, and escalation is not a failure by this setting
    assert sig.failure_probability == pytest.approx(sig.evidence["followed_up"]["probability"], abs=1e-4)


@override_settings(SIGNALS_REPHRASE_PRIOR=0.5)
def test_the_base_rate_comes_from_settings(db, tmp_path):
    # At a balanced prior the follow-up 6 -> 7 scores 0.78 and is flagged; at the default 0.1 it is not.
    ingest_records(tmp_path, session_lines(SAOSIN))
    detect()
    ev = signals_of(f"{SAOSIN}-6").evidence["rephrased"]
    assert ev["prior"] == 0.5 and ev["probability"] == pytest.approx(ev["score"], abs=1e-4)


def test_daily_rates_api(saosin, api):
    daily = api.get("/api/signals/daily/").json()
    # rates are exactly the stored flags over the day's turns
    flags = [s.flags() for s in TurnSignals.objects.all()]
    expected = {f"{name}_rate": sum(f[name] for f in flags) / 8 for name in SIGNAL_NAMES}
    expected["failures_rate"] = TurnSignals.objects.filter(failure_candidate=True).count() / 8
    assert len(daily) == 1
    row = daily[0]
    assert (row["date"], row["model"], row["turns"]) == ("2026-09-01", "quac-span-answerer", 8)
    assert {k: row[k] for k in expected} == pytest.approx(expected)
    assert row["escalated_rate"] == 0.375 and row["session_ended_rate"] == 0.125 and row["abandoned_rate"] == 0
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
    assert {k for k in SIGNAL_NAMES if sig[k]} == {"rephrased", "escalated"}
    assert sig["evidence"]["rephrased"]["next_turn_id"] == f"{SAOSIN}-4r"
    assert sig["definition_version"] == DEFINITION_VERSION and sig["failure_probability"] > 0.98


def test_evaluate_detectors_reports_the_example_log_at_its_base_rate():
    out = io.StringIO()
    call_command("evaluate_detectors", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert set(report["sets"]) >= {"canard", "hint3", "cast"}
    assert report["sets"]["canard"]["meets_target"] and report["sets"]["hint3"]["meets_target"]
    log = report["example_log"]
    assert log["re_asks"] == 417 and log["all"]["re_asks"] == 417 and log["prior"] == 0.1
    for part in ("held_out", "all"):
        m = log[part]
        assert m["precision"] >= 0.90 and m["recall"] >= 0.90, (part, m)
        assert m["tp"] + m["fp"] == m["flagged"] and m["tp"] == round(m["recall"] * m["re_asks"])
        assert [a["k"] for a in m["precision_at"]] == [50, 200]
        assert all(a["precision"] >= 0.9 for a in m["precision_at"])
    assert 0 < log["held_out"]["re_asks"] < 417
    assert len(log["demo_top"]) == 5 and all(d["re_ask"] for d in log["demo_top"])


@pytest.mark.django_db(transaction=True)
def test_detection_outside_a_transaction_commits_each_batch(tmp_path):
    """On PostgreSQL this runs the pipelined path (own connections: read k+1 / detect k / write k-1)."""
    from production.services.signals import signals_detect

    ingest_records(tmp_path, session_lines(SAOSIN) + session_lines(ZAPPA))
    result = signals_detect(batch_sessions=1)  # one session per batch: the pipeline holds several at once
    assert (result.sessions, result.turns) == (2, TurnSignals.objects.count())
    assert flags_of(f"{SAOSIN}-4") == {"escalated", "rephrased"} and flags_of(f"{SAOSIN}-7") == {"session_ended"}
    assert not Session.objects.filter(dirty=True).exists()
    assert set(TurnSignals.objects.values_list("definition_version", flat=True)) == {DEFINITION_VERSION}
    # nothing dirty: a second run claims nothing and changes nothing
    before = dict(TurnSignals.objects.values_list("turn_id", "failure_probability"))
    assert signals_detect().sessions == 0
    assert dict(TurnSignals.objects.values_list("turn_id", "failure_probability")) == before


@pytest.mark.parametrize("mode", ["lexical", "semantic"])
def test_signals_on_the_example_logs_are_those_recorded_before_the_speed_work(mode):
    """detect_rows on the three example logs and an eventful copy of the CANARD one (every event
    kind, untimed turns, texts to escape) against tests/fixtures/detector_decisions.json: with the
    lexical model every row exactly (flags, probability bits, evidence and its key order); with the
    semantic one every turn's flags, but a pair within 1e-4 of the threshold may move with batching."""
    from tests.detector_snapshot import FIXTURE, MARGIN, _sha, flags_string, log_rows, row_dump

    want = json.loads(FIXTURE.read_text(encoding="utf-8"))["logs"][mode]
    got = log_rows(mode == "semantic")
    assert set(got) == set(want)
    for name, (det, rows) in got.items():
        w = want[name]
        assert len(rows) == w["turns"], name
        if mode == "lexical":
            assert flags_string(rows) == w["flags"], name
            assert _sha([row_dump(r) for r in rows]) == w["sha256"], name
            continue
        flags = flags_string(rows)
        moved = [i for i in range(len(rows)) if flags[2 * i:2 * i + 2] != w["flags"][2 * i:2 * i + 2]]
        for i in moved:
            ev = rows[i].evidence.get("rephrased") or rows[i].evidence.get("followed_up")
            assert ev is not None and abs(ev["probability"] - det.threshold) <= MARGIN, (name, i, rows[i])
        assert len(moved) <= 2, (name, moved)
