#!/usr/bin/env python3
"""Build the example production logs in examples/ from real public data.

    python3 examples/build_example_log.py --data-dir ../shared/data --out examples/

Inputs (see ../shared/data/*/README.md):
  conv_followups/canard_dev_dialogs.jsonl   -> canard_log.jsonl  (CC BY-SA 4.0)
  conv_followups/trec_cast_2019_2022.jsonl  -> cast_log.jsonl    (MIT repo licence)
  hint3/hint3_v2.jsonl (split == "test")    -> hint3_log.jsonl   (ODbL 1.0 / DbCL 1.0)

Output follows the input contract in ../shared/spec/production-log.md. Every rule
that adds an event or a turn is documented in examples/README.md. The build is
deterministic: all randomness comes from random.Random seeded with SEED and the
session id, and late-event selection from sha256 of the turn id. stdlib only.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import hashlib
import json
import os
import random
import re
import sys

SEED = 20260901

START_MIN = dt.datetime(2026, 9, 1, 0, 0, 0, tzinfo=dt.timezone.utc)
START_MAX = dt.datetime(2026, 11, 25, 0, 0, 0, tzinfo=dt.timezone.utc)

TURN_GAP_S = (15, 120)    # user reading time between a response and the next query
REASK_GAP_S = (10, 60)    # re-ask after a failed answer
LATENCY_MS = (300, 2500)  # query -> response
EVENT_GAP_S = (1, 8)      # response -> escalation event (before any re-ask)

LATE_EVENT_MODULUS = 10   # sha256(turn id) % 10 == 0  -> event moved to its own line (~10%)
EVENTS_BEFORE_TURN = 5    # per file: this many late event lines go 1 line before their turn

CANARD_MODEL = "quac-span-answerer"
CANARD_IDK = "I don't know."
CAST_MODEL = {
    2019: "cast-2019-no-response",
    2020: "cast-2020-no-response",
    2021: "cast-2021-canonical-passage",
    2022: "cast-2022-response",
}
HINT3_FALLBACK = "Sorry, I could not find an answer to that."
HINT3_OOS_INTENT = "NO_NODES_DETECTED"

EVENT_TYPES_KNOWN = {"copy", "thumbs_up", "thumbs_down", "human_override", "escalation", "navigate_away"}


# --------------------------------------------------------------------------- helpers

def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t.microsecond == 0 else \
        t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sha_int(s: str) -> int:
    return int.from_bytes(hashlib.sha256(s.encode("utf-8")).digest()[:8], "big")


def normalise(s: str) -> str:
    """Lower-case, punctuation -> space, collapse whitespace."""
    return " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())


def session_rng(session_id: str) -> random.Random:
    return random.Random(f"{SEED}:{session_id}")


def session_start(rng: random.Random) -> dt.datetime:
    span = int((START_MAX - START_MIN).total_seconds())
    return START_MIN + dt.timedelta(seconds=rng.randrange(span))


class Clock:
    """Per-session timeline: query time, response time, next query time."""

    def __init__(self, session_id: str):
        self.rng = session_rng(session_id)
        self.next_query = session_start(self.rng)

    def turn(self, gap_after=TURN_GAP_S):
        ts = self.next_query
        latency = self.rng.randint(*LATENCY_MS)
        rts = ts + dt.timedelta(milliseconds=latency)
        self.last_response = rts
        self.next_query = rts + dt.timedelta(seconds=self.rng.randint(*gap_after))
        return ts, rts, latency

    def event_time(self):
        return self.last_response + dt.timedelta(seconds=self.rng.randint(*EVENT_GAP_S))


def make_turn(tid, sid, ts, rts, latency, query, response, model, metadata, events=None, contexts=None):
    rec = {
        "id": tid,
        "session_id": sid,
        "timestamp": rfc3339(ts),
        "query": query,
        "response": response,
    }
    if contexts:
        rec["contexts"] = contexts
    rec["model"] = model
    rec["response_timestamp"] = rfc3339(rts)
    rec["latency_ms"] = latency
    if events:
        rec["events"] = events
    rec["metadata"] = metadata
    return rec


# --------------------------------------------------------------------------- converters
# Each converter returns a list of sessions; a session is a list of turn records.

def build_canard(dialogs):
    sessions = []
    for d in dialogs:
        did = d["dialog_id"]
        sid = f"canard-{did}"
        clock = Clock(sid)
        turns = []
        n = len(d["turns"])
        for i, t in enumerate(d["turns"]):
            tno = t["turn_no"]
            tid = f"canard-{did}-{tno}"
            answer = t["answer"]
            if answer is None:
                if i != n - 1:
                    raise SystemExit(f"CANARD {did} turn {tno}: null answer on a non-final turn")
                answer = ""
            failed = answer == CANARD_IDK
            reask = failed and i != n - 1 and normalise(t["rewrite"]) != normalise(t["question"])
            ts, rts, lat = clock.turn(REASK_GAP_S if reask else TURN_GAP_S)
            events = None
            if failed:
                events = [{"type": "escalation", "timestamp": rfc3339(clock.event_time()),
                           "actor": "handoff", "reason": 'answer was "I don\'t know."'}]
            meta = {"dialog_id": did, "title": d["title"], "section": d["section"],
                    "turn_no": tno, "dataset": "canard_dev"}
            turns.append(make_turn(tid, sid, ts, rts, lat, t["question"], answer, CANARD_MODEL, meta, events))
            if reask:
                # Re-ask: the same need with the context spelled out = CANARD's human rewrite.
                rts_, rrts, rlat = clock.turn(TURN_GAP_S)
                rid = f"{tid}r"
                revents = [{"type": "escalation", "timestamp": rfc3339(clock.event_time()),
                            "actor": "handoff", "reason": "re-ask after \"I don't know.\" got no answer"}]
                rmeta = {"dialog_id": did, "title": d["title"], "section": d["section"],
                         "turn_no": tno, "dataset": "canard_dev", "synthetic_reask_of": tid,
                         "query_source": "canard_rewrite"}
                turns.append(make_turn(rid, sid, rts_, rrts, rlat, t["rewrite"], "", CANARD_MODEL, rmeta, revents))
        sessions.append(turns)
    return sessions


def build_cast(convs):
    sessions = []
    for c in convs:
        cid = c["conv_id"]
        year = c["year"]
        sid = f"cast-{cid}"
        clock = Clock(sid)
        turns = []
        for t in c["turns"]:
            tid = f"cast-{cid}-{t['turn_id']}"
            ts, rts, lat = clock.turn()
            resp = t.get("response")
            meta = {"conv_id": cid, "year": year, "topic": c["topic"], "turn_id": t["turn_id"],
                    "position": t["position"], "title": c["title"], "dataset": "trec_cast"}
            if resp is None and year in (2021, 2022):
                meta["response_missing_in_source"] = True
            turns.append(make_turn(tid, sid, ts, rts, lat, t["utterance"], resp if resp is not None else "",
                                   CAST_MODEL[year], meta))
        sessions.append(turns)
    return sessions


def build_hint3(rows):
    sessions = []
    for r in rows:
        if r["split"] != "test":
            continue
        if r["origin"] != "real_user_query":
            raise SystemExit(f"HINT3 {r['id']}: test row with origin {r['origin']!r}")
        hid = r["id"]
        sid = f"hint3-{hid}"
        clock = Clock(sid)
        ts, rts, lat = clock.turn()
        oos = bool(r["out_of_scope"])
        if oos != (r["intent"] == HINT3_OOS_INTENT):
            raise SystemExit(f"HINT3 {hid}: out_of_scope / intent mismatch")
        if oos:
            resp = HINT3_FALLBACK
            events = [{"type": "escalation", "timestamp": rfc3339(clock.event_time()),
                       "actor": "handoff", "reason": "bot had no node for this query"}]
        else:
            resp = f'[answered from the "{r["intent"]}" node]'
            events = None
        meta = {"bot": r["bot"], "intent": r["intent"], "out_of_scope": oos, "hint3_id": hid,
                "dataset": "hint3_v2_test"}
        sessions.append([make_turn(f"hint3-{hid}", sid, ts, rts, lat, r["text"], resp, f"{r['bot']}-bot",
                                   meta, events)])
    return sessions


# --------------------------------------------------------------------------- layout

def layout(sessions):
    """Order sessions by start time; move ~10% of escalation events to late event lines.

    Returns the list of output line objects.
    """
    sessions = sorted(sessions, key=lambda s: (s[0]["timestamp"], s[0]["session_id"]))
    turns = [t for s in sessions for t in s]
    ids = collections.Counter(t["id"] for t in turns)
    dups = [k for k, v in ids.items() if v > 1]
    if dups:
        raise SystemExit(f"duplicate turn ids: {dups[:10]} ({len(dups)} total)")

    late = []  # (turn id, event)
    for t in turns:
        if not t.get("events"):
            continue
        if sha_int(t["id"]) % LATE_EVENT_MODULUS != 0:
            continue
        keep, move = [], []
        for e in t["events"]:
            (move if e["type"] == "escalation" else keep).append(e)
        if keep:
            t["events"] = keep
        else:
            del t["events"]
        late.extend((t["id"], e) for e in move)

    before_ids = set(sorted({tid for tid, _ in late}, key=lambda x: sha_int("before:" + x))[:EVENTS_BEFORE_TURN])
    before = {tid: [] for tid in before_ids}
    tail = []
    for tid, e in late:
        line = {"type": "event", "turn_id": tid, "event": e}
        (before[tid] if tid in before_ids else tail).append(line)

    lines = []
    for t in turns:
        lines.extend(before.get(t["id"], []))
        lines.append(t)
    # late lines at the end, in the order their events happened
    tail.sort(key=lambda l: (l["event"].get("timestamp", ""), l["turn_id"]))
    lines.extend(tail)
    return lines


# --------------------------------------------------------------------------- validator

RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_ts(v):
    if not isinstance(v, str) or not RFC3339_RE.match(v):
        return None
    try:
        return dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None


def check_event(e, where, errs):
    if not isinstance(e, dict):
        errs.append(f"{where}: event is not an object")
        return
    if not isinstance(e.get("type"), str) or not e["type"]:
        errs.append(f"{where}: event.type must be a non-empty string")
    if "timestamp" in e and parse_ts(e["timestamp"]) is None:
        errs.append(f"{where}: event.timestamp not RFC 3339 with offset")
    if e.get("type") == "human_override" and not isinstance(e.get("corrected_response"), str):
        errs.append(f"{where}: human_override without corrected_response")
    for k in ("actor", "reason", "corrected_response"):
        if k in e and not isinstance(e[k], str):
            errs.append(f"{where}: event.{k} must be a string")


def validate_file(path):
    """Validate every line against the contract + file-level layout rules. Raises on any violation."""
    errs = []
    turn_ids, seen_sessions, event_lines = set(), set(), []
    cur_session, last_ts = None, None
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            where = f"{path}:{n}"
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                errs.append(f"{where}: invalid JSON ({exc})")
                continue
            if not isinstance(obj, dict):
                errs.append(f"{where}: not an object")
                continue
            typ = obj.get("type", "turn")
            if typ == "event":
                if not isinstance(obj.get("turn_id"), str) or not obj["turn_id"]:
                    errs.append(f"{where}: event line without turn_id")
                check_event(obj.get("event"), where, errs)
                event_lines.append((n, obj.get("turn_id")))
                continue
            if typ != "turn":
                errs.append(f"{where}: unknown line type {typ!r}")
                continue
            for k in ("id", "session_id", "query"):
                if not isinstance(obj.get(k), str) or not obj[k]:
                    errs.append(f"{where}: {k} must be a non-empty string")
            if not isinstance(obj.get("response"), str):
                errs.append(f"{where}: response must be a string")
            ts = parse_ts(obj.get("timestamp"))
            if ts is None:
                errs.append(f"{where}: timestamp not RFC 3339 with offset")
            if "response_timestamp" in obj:
                rts = parse_ts(obj["response_timestamp"])
                if rts is None:
                    errs.append(f"{where}: response_timestamp not RFC 3339")
                elif ts is not None and rts < ts:
                    errs.append(f"{where}: response_timestamp before timestamp")
            if "latency_ms" in obj and (isinstance(obj["latency_ms"], bool) or not isinstance(obj["latency_ms"], (int, float))):
                errs.append(f"{where}: latency_ms must be a number")
            for k in ("user_id", "model"):
                if k in obj and not isinstance(obj[k], str):
                    errs.append(f"{where}: {k} must be a string")
            if "contexts" in obj and not (isinstance(obj["contexts"], list) and all(isinstance(c, str) for c in obj["contexts"])):
                errs.append(f"{where}: contexts must be an array of strings")
            if "metadata" in obj and not isinstance(obj["metadata"], dict):
                errs.append(f"{where}: metadata must be an object")
            if "events" in obj:
                if not isinstance(obj["events"], list):
                    errs.append(f"{where}: events must be an array")
                else:
                    for e in obj["events"]:
                        check_event(e, where, errs)
            tid, sid = obj.get("id"), obj.get("session_id")
            if tid in turn_ids:
                errs.append(f"{where}: duplicate turn id {tid}")
            turn_ids.add(tid)
            if sid != cur_session:
                if sid in seen_sessions:
                    errs.append(f"{where}: session {sid} is not contiguous")
                seen_sessions.add(sid)
                cur_session, last_ts = sid, None
            if ts is not None and last_ts is not None and ts < last_ts:
                errs.append(f"{where}: turn earlier than the previous turn of its session")
            last_ts = ts or last_ts
    for n, tid in event_lines:
        if tid not in turn_ids:
            errs.append(f"{path}:{n}: event line for unknown turn {tid}")
    if errs:
        for e in errs[:50]:
            print("INVALID", e, file=sys.stderr)
        raise SystemExit(f"{path}: {len(errs)} contract violations")


# --------------------------------------------------------------------------- main

def write_jsonl(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for obj in lines:
            f.write(json.dumps(obj, ensure_ascii=False, separators=(", ", ": ")) + "\n")


def stats(path):
    sessions, turns, reasks = set(), 0, 0
    inline, late, before = collections.Counter(), collections.Counter(), 0
    seen = set()
    with open(path, encoding="utf-8") as f:
        for raw in f:
            o = json.loads(raw)
            if o.get("type") == "event":
                late[o["event"]["type"]] += 1
                if o["turn_id"] not in seen:
                    before += 1
                continue
            seen.add(o["id"])
            sessions.add(o["session_id"])
            turns += 1
            reasks += "synthetic_reask_of" in o.get("metadata", {})
            for e in o.get("events", []):
                inline[e["type"]] += 1
    total = inline + late
    return {"sessions": len(sessions), "turns": turns, "synthetic_reask_turns": reasks,
            "events_by_type": dict(total), "inline_events": sum(inline.values()),
            "event_lines": sum(late.values()), "event_lines_before_turn": before,
            "event_lines_at_end": sum(late.values()) - before}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="path to shared/data")
    ap.add_argument("--out", required=True, help="output folder (examples/)")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)

    jobs = [
        ("canard_log.jsonl", build_canard, os.path.join(a.data_dir, "conv_followups", "canard_dev_dialogs.jsonl")),
        ("cast_log.jsonl", build_cast, os.path.join(a.data_dir, "conv_followups", "trec_cast_2019_2022.jsonl")),
        ("hint3_log.jsonl", build_hint3, os.path.join(a.data_dir, "hint3", "hint3_v2.jsonl")),
    ]
    for name, fn, src in jobs:
        lines = layout(fn(load_jsonl(src)))
        out = os.path.join(a.out, name)
        write_jsonl(out, lines)
        validate_file(out)
        print(name, json.dumps(stats(out), sort_keys=True))


if __name__ == "__main__":
    main()
