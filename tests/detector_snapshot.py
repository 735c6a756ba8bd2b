"""What the rephrase detector and signal detection decide, recorded so a faster implementation can
be held to the same decisions (tests/fixtures/detector_decisions.json).

Recorded from the implementation before the speed work of issue #14 (fitted detector, model.json
threshold 0.63) with ``python -m tests.detector_snapshot --write`` and compared by
``test_similarity.py`` (the balanced eval sets, prior 0.5) and ``test_signals.py`` (the example
logs through ``detect_rows``, prior 0.1, plus an "eventful" variant of the CANARD log with every
kind of event, untimed turns and awkward query texts).

* lexical model: ``sha256`` of every score and probability (to 9 significant digits) and of every
  signals row (flags, failure probability to 9 digits, corrected response, evidence with its key
  order). Not the float's every bit: numpy's kernels differ per CPU (AVX2 vs AVX-512) in the last
  bits, and an exact hash recorded on one machine failed on another with every decision equal.
* semantic model: the decision per pair / the flags per turn. The encoder's cosines move by ~1e-7
  with how texts are batched, so a pair whose probability lies within ``MARGIN`` of the threshold
  may differ; the test skips those (none did when this was recorded).
"""
from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "detector_decisions.json"
LOGS = ("canard", "cast", "hint3")
MARGIN = 1e-4


def _r(x: float) -> str:
    return format(x, ".9g")


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def eval_set_scores(semantic: bool) -> dict:
    """Per eval set: (detector, its RephraseScore per pair) at prior 0.5."""
    from rephrase.detector import RephraseDetector
    from rephrase.evaluate import build_sets

    det = RephraseDetector(semantic=semantic, prior=0.5)
    return {name: (det, det.score_pairs([(a, b) for a, b, _, _ in pairs])) for name, pairs in build_sets().items()}


def eval_set_snapshot(semantic: bool) -> dict:
    out = {}
    for name, (det, scored) in eval_set_scores(semantic).items():
        m = {"decisions": "".join("1" if det.is_rephrase(s) else "0" for s in scored),
             "stages": "".join(s.stage[0] for s in scored)}
        if not semantic:
            m["sha256"] = _sha([[_r(s.score), _r(s.probability)] for s in scored])
        out[name] = m
    return out


def eventful(turns: list[tuple], events: dict, seed: int = 14) -> tuple[list[tuple], dict]:
    """The log with events of every kind on ~20 % of its turns (some untimed, some before the answer,
    some long after), a few untimed turns, and query texts JSON and COPY must escape."""
    rnd = random.Random(seed)
    odd = ["", "   ", 'say "hi"\tand\\or\nnot', "naïve café — 東京? \u2028 \x07", "x" * 420 + " what", "back\\slash"]
    kinds = ["copy", "thumbs_up", "thumbs_down", "escalation", "human_override", "navigate_away", "close", "view"]
    new_turns = []
    for t in turns:
        tid, ext, sess, ts, rts, q = t
        r = rnd.random()
        if r < 0.03:
            q = rnd.choice(odd) + (q if rnd.random() < 0.5 else "")
        elif r < 0.05:
            rts = None
        elif r < 0.06:
            ts, rts = None, None
        elif r < 0.07:
            rts = 0.0 if rnd.random() < 0.5 else rts
        new_turns.append((tid, ext, sess, ts, rts, q))
    evs = {k: list(v) for k, v in events.items()}
    eid = 10_000_000
    for tid, ext, sess, ts, rts, q in new_turns:
        if rnd.random() >= 0.2:
            continue
        base = rts or ts
        for _ in range(rnd.choice((1, 1, 1, 2, 3))):
            eid += 1
            kind = rnd.choice(kinds)
            when = None if base is None or rnd.random() < 0.1 else base + rnd.choice((-5, 3, 30, 119.9995, 121, 400, 4000))
            actor = rnd.choice(("", "", "agent-7", "user"))
            reason = rnd.choice(("", "", 'wrong,\t"policy"\n\\see', "too slow"))
            corrected = rnd.choice(("", "Use form 12-B.\tThen\\call\n\"us\"")) if kind == "human_override" else ""
            evs.setdefault(tid, []).append((tid, eid, kind, when, actor, reason, corrected))
    for v in evs.values():
        v.sort(key=lambda e: (e[3] is None, e[3], e[1]))
    return new_turns, evs


def config():
    from production.services.signals import DetectConfig

    return DetectConfig(window_seconds=300, abandon_seconds=120, failure_on_thumbs_down=True,
                        failure_on_escalation=True,
                        failure_probability={"human_override": 0.95, "thumbs_down": 0.7, "escalated": 0.6})


def example_logs() -> dict[str, tuple[list[tuple], dict]]:
    from production.detector_eval import read_example_log

    logs = {}
    for name in LOGS:
        turns, events, _ = read_example_log(REPO / "examples" / f"{name}_log.jsonl")
        logs[name] = (turns, events)
    logs["canard-eventful"] = eventful(*logs["canard"])
    return logs


def row_dump(r) -> list:
    return [r.turn_id, [k for k, v in r.flags.items() if v], _r(r.failure_probability), r.corrected_response,
            r.evidence]


def flags_string(rows) -> str:
    from production.services.signals import FLAG_COLUMNS

    # two characters per turn: its flags as a number 0..1023 in base 32
    digits = "0123456789abcdefghijklmnopqrstuv"
    out = []
    for r in rows:
        code = sum(1 << i for i, c in enumerate(FLAG_COLUMNS) if r.flags[c])
        out.append(digits[code >> 5] + digits[code & 31])
    return "".join(out)


def log_rows(semantic: bool) -> dict:
    """Per example log: (detector, its signals rows) at prior 0.1, the whole log in one call."""
    from production.services.signals import detect_rows
    from rephrase.detector import RephraseDetector

    det = RephraseDetector(semantic=semantic, prior=0.1)
    return {name: (det, detect_rows(turns, events, det, config())) for name, (turns, events) in example_logs().items()}


def log_snapshot(semantic: bool) -> dict:
    out = {}
    for name, (det, rows) in log_rows(semantic).items():
        m = {"turns": len(rows), "flags": flags_string(rows)}
        if not semantic:
            m["sha256"] = _sha([row_dump(r) for r in rows])
        out[name] = m
    return out


def snapshot() -> dict:
    return {"about": __doc__.split("\n\n")[0], "threshold": None,
            "eval_sets": {"lexical": eval_set_snapshot(False), "semantic": eval_set_snapshot(True)},
            "logs": {"lexical": log_snapshot(False), "semantic": log_snapshot(True)}}


if __name__ == "__main__":
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")
    import django

    django.setup()
    from rephrase.detector import DEFAULT_THRESHOLD

    snap = snapshot()
    snap["threshold"] = DEFAULT_THRESHOLD
    if "--write" in sys.argv:
        FIXTURE.write_text(json.dumps(snap, separators=(",", ":")) + "\n", encoding="utf-8")
        print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
    else:
        print(json.dumps({k: {m: {s: {f: (v if len(str(v)) < 80 else f"{str(v)[:60]}...") for f, v in d.items()}
                                  for s, d in sets.items()} for m, sets in snap[k].items()}
                          for k in ("eval_sets", "logs")}, indent=1))
