"""Build the shadow demo's production log from human pairwise preferences (no LLM needed).

Each preference pair becomes one production turn (its query, `response_a` as the answer that was
served) and one mirrored candidate answer (`{"type": "shadow", ...}` with `response_b`) for the
release `demo-candidate`, as a gateway that mirrors traffic would log it. Half the mirror lines
come before their turn in the file, half after, as they do in real logs. Turns are spread over
8 days so the report has a full week. The humans' picks, written next to it, stand in for the
judge (`shadow_judge --humans-from`).

    python examples/shadow_demo_log.py --out-dir .run/demo
    python manage.py release_add demo-candidate --model demo-candidate-model
    python manage.py ingest .run/demo/shadow_log.jsonl --source shadow-demo
    python manage.py shadow_judge --release demo-candidate --humans-from .run/demo/shadow_prefs.jsonl
    python manage.py shadow_report --release demo-candidate

Stdlib only. Data: examples/judge_preferences/ (PandaLM, Apache-2.0; MT-Bench human judgments via
LLMBar, MIT + CC BY 4.0: see that folder's README for sources and attribution).
"""
from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SETS = ("pandalm", "mtbench")
RELEASE = "demo-candidate"


def build(sets=DEFAULT_SETS, days: int = 8, start: str = "2026-10-01") -> tuple[list[dict], list[dict]]:
    """(log lines, preference lines used)."""
    first = datetime.fromisoformat(start).replace(tzinfo=timezone.utc)
    log, prefs = [], []
    i = 0
    for name in sets:
        with (HERE / "judge_preferences" / f"{name}.jsonl").open(encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                stamp = first + timedelta(days=i % days, minutes=(i // days) % 1440)
                turn = {"id": rec["id"], "session_id": rec["id"], "timestamp": stamp.isoformat(),
                        "query": rec["query"], "response": rec["response_a"], "model": "demo-served-model",
                        "metadata": {"dataset": rec["set"]}}
                shadow = {"type": "shadow", "turn_id": rec["id"], "release": RELEASE, "response": rec["response_b"],
                          "latency_ms": 400 + (i * 37) % 900}
                log.extend([shadow, turn] if i % 2 else [turn, shadow])
                prefs.append({k: rec[k] for k in ("id", "set", "query", "response_a", "response_b", "human")
                              if k in rec} | ({"human_votes": rec["human_votes"]} if "human_votes" in rec else {}))
                i += 1
    return log, prefs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=".run/demo")
    parser.add_argument("--sets", default=",".join(DEFAULT_SETS), help="files of examples/judge_preferences")
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log, prefs = build(tuple(s for s in args.sets.split(",") if s))
    for path, rows in ((out / "shadow_log.jsonl", log), (out / "shadow_prefs.jsonl", prefs)):
        with path.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    print(json.dumps({"log": str(out / "shadow_log.jsonl"), "preferences": str(out / "shadow_prefs.jsonl"),
                      "turns": len(prefs), "mirror_lines": len(prefs), "release": RELEASE}))


if __name__ == "__main__":
    main()
