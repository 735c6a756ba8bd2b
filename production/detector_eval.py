"""Detector evaluation as ``manage.py evaluate_detectors`` reports it.

Two parts:

* the balanced pair sets of ``rephrase.evaluate`` (CANARD, HINT3, CAsT; prior 0.5);
* the example CANARD log at its real base rate: ``examples/canard_log.jsonl`` read by ingest's
  own reader and run through ``detect_rows`` — the code ``detect_signals`` runs — with the
  settings' window, prior and threshold. Ground truth comes from how the log was built
  (``examples/build_example_log.py``): a turn was re-asked when the next turn carries
  ``metadata.synthetic_reask_of`` = its id (417 turns). Held out = dialogs the detector was not
  trained on (``rephrase.evaluate.held_out``); "all" includes the training dialogs.

No database: the log is read into the tuples detection works on.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from rephrase.evaluate import build_sets, canard_pairs, evaluate, format_report, held_out, hint3_pairs  # noqa: F401

from .readers import read_jsonl
from .services.signals import DetectConfig, detect_rows, epoch, get_detector

EXAMPLE_LOG = Path(__file__).resolve().parent.parent / "examples" / "canard_log.jsonl"
TOP_K = (50, 200)


def read_example_log(path: Path = EXAMPLE_LOG):
    """(turn tuples in conversation order, events by turn id, turn records by id)."""
    turns, pending = [], []
    with open(path, "rb") as f:
        for _, item in read_jsonl(f):
            if hasattr(item, "session_external_id"):
                turns.append(item)
            elif hasattr(item, "turn_external_id"):
                pending.append(item)
    sessions: dict[str, int] = {}
    ids = {t.external_id: i + 1 for i, t in enumerate(turns)}
    events: dict[int, list[tuple]] = defaultdict(list)
    eid = 0
    for t in turns:
        for e in t.events:
            pending.append(e)
    for e in pending:
        if e.turn_external_id in ids:
            eid += 1
            events[ids[e.turn_external_id]].append(
                (ids[e.turn_external_id], eid, e.type, epoch(e.timestamp), e.actor, e.reason, e.corrected_response))
    for evs in events.values():
        evs.sort(key=lambda e: (e[3] is None, e[3], e[1]))
    rows = [(ids[t.external_id], t.external_id, sessions.setdefault(t.session_external_id, len(sessions) + 1),
             epoch(t.timestamp), epoch(t.response_timestamp), t.query) for t in turns]
    rows.sort(key=lambda r: (r[2], r[3] is None, r[3], r[0]))
    return rows, events, {t.external_id: t for t in turns}


def _precision_at(ranked: list[bool], k: int) -> dict:
    top = ranked[:k]
    return {"k": k, "n": len(top), "precision": round(sum(top) / len(top), 4) if top else None}


def evaluate_example_log(path: Path = EXAMPLE_LOG, detector=None) -> dict:
    detector = detector or get_detector()
    turns, events, records = read_example_log(path)
    rows = detect_rows(turns, events, detector, DetectConfig.from_settings(fitted=False))  # the stated weights
    reasked = {r.metadata["synthetic_reask_of"] for r in records.values() if "synthetic_reask_of" in r.metadata}
    ext = {t[0]: t[1] for t in turns}
    out: dict = {"log": path.name, "re_asks": len(reasked), "prior": detector.prior, "threshold": detector.threshold,
                 "semantic": detector.semantic}
    scored = []  # (rephrase probability, is a re-ask, held out)
    for r in rows:
        ev = r.evidence.get("rephrased") or r.evidence.get("followed_up")
        turn_id = ext[r.turn_id]
        if ev is not None:
            scored.append((ev["probability"], turn_id in reasked, held_out(records[turn_id].metadata["dialog_id"]),
                           r.flags["rephrased"]))
    for part, keep in (("held_out", lambda h: h), ("all", lambda h: True)):
        sel = [s for s in scored if keep(s[2])]
        tp = sum(1 for s in sel if s[3] and s[1])
        fp = sum(1 for s in sel if s[3] and not s[1])
        pos = sum(1 for s in sel if s[1])
        ranked = [s[1] for s in sorted(sel, key=lambda s: -s[0])]
        out[part] = {"pairs": len(sel), "re_asks": pos, "flagged": tp + fp, "tp": tp, "fp": fp,
                     "precision": round(tp / (tp + fp), 4) if tp + fp else None,
                     "recall": round(tp / pos, 4) if pos else None,
                     "precision_at": [_precision_at(ranked, k) for k in TOP_K]}
    # The demo's "top failure candidates": rephrased candidates, strongest failure probability first.
    demo = sorted((r for r in rows if r.flags["rephrased"]), key=lambda r: (-r.failure_probability, r.turn_id))
    out["demo_top"] = [{"turn": ext[r.turn_id], "failure_probability": r.failure_probability,
                        "re_ask": ext[r.turn_id] in reasked} for r in demo[:5]]
    return out


def format_example_log(res: dict) -> str:
    lines = [f"\nexample log {res['log']} ({res['re_asks']} re-asked turns; prior {res['prior']}, "
             f"threshold {res['threshold']}, semantic={res['semantic']}):",
             f"{'part':9} {'pairs':>6} {'re-asks':>7} {'flagged':>7} {'P':>6} {'R':>6}   precision at top K"]
    for part in ("held_out", "all"):
        m = res[part]
        at = "  ".join(f"P@{a['k']}={a['precision']:.3f}" for a in m["precision_at"])
        lines.append(f"{part:9} {m['pairs']:6d} {m['re_asks']:7d} {m['flagged']:7d} {m['precision'] or 0:6.3f} "
                     f"{m['recall'] or 0:6.3f}   {at}")
    lines.append("demo's top 5 rephrased failure candidates: "
                 + ", ".join(f"{d['turn']} ({d['failure_probability']:.3f}, {'re-ask' if d['re_ask'] else 'NOT a re-ask'})"
                             for d in res["demo_top"]))
    return "\n".join(lines)
