"""Generate an N-turn production log for benchmarks (default 1M turns, ~270 bytes a turn).

Queries are drawn from the real example logs so that text lengths and vocabulary are those of
real traffic; ids, sessions and timestamps are generated. Deterministic for a given seed.

`--answers passages` writes the log of the ingest benchmark (issue #14): every answer is a real
retrieved passage of ~1 KB, the TREC CAsT 2021 canonical passages and 2022 responses of at least
500 bytes that `examples/cast_log.jsonl` holds (348 distinct, 966 bytes on average; MIT licence
and attribution in `examples/licenses/` and `examples/README.md`), and each line carries exactly
the fields of the raw-COPY baseline: id, session_id, timestamp, query, response.
``--distinct`` appends " (case N)" to every query, so no two turns share a text (the semantic
benchmark: every query is new to the encoder, and 3-4 tokens longer than the real one).
"""
import argparse
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=1_000_000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--answers", choices=("examples", "passages"), default="examples",
                    help="examples: the example logs' answers cut to 300 characters; passages: ~1 KB CAsT passages")
    ap.add_argument("--distinct", action="store_true",
                    help="make every query text distinct (a numbered suffix): no encoder cache hit across turns")
    args = ap.parse_args()
    if args.answers == "passages":
        passages_log(args)
        return
    rnd = random.Random(args.seed)
    pool = []
    for name in ("canard", "cast", "hint3"):
        with open(REPO / "examples" / f"{name}_log.jsonl", encoding="utf-8") as f:
            pool += [(r["query"], r["response"][:300]) for r in map(json.loads, f) if "query" in r]
    start = datetime(2026, 9, 1, tzinfo=timezone.utc)
    with open(args.out, "w", encoding="utf-8") as out:
        n = session = 0
        while n < args.turns:
            session += 1
            ts = start + timedelta(seconds=rnd.randrange(0, 86 * 86400))
            for k in range(rnd.randint(1, 8)):
                if n >= args.turns:
                    break
                q, r = pool[rnd.randrange(len(pool))]
                if args.distinct:
                    q = f"{q} (case {n})"
                rec = {"id": f"bench-{n:08d}", "session_id": f"bench-s-{session:07d}",
                       "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "query": q, "response": r,
                       "model": f"bench-model-{session % 3}", "latency_ms": rnd.randint(300, 2500)}
                if rnd.random() < 0.05:
                    rec["events"] = [{"type": rnd.choice(["copy", "thumbs_up", "thumbs_down"])}]
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                ts += timedelta(seconds=rnd.randint(10, 400))
                n += 1


def passages_log(args) -> None:
    rnd = random.Random(args.seed)
    queries, passages = [], set()
    for name in ("canard", "cast", "hint3"):
        with open(REPO / "examples" / f"{name}_log.jsonl", encoding="utf-8") as f:
            for r in map(json.loads, f):
                if "query" not in r:
                    continue
                queries.append(r["query"])
                if name == "cast" and len(r["response"].encode()) >= 500:
                    passages.add(r["response"])
    passages = sorted(passages)
    start = datetime(2026, 9, 1, tzinfo=timezone.utc)
    with open(args.out, "w", encoding="utf-8") as out:
        n = session = 0
        while n < args.turns:
            session += 1
            ts = start + timedelta(seconds=rnd.randrange(0, 86 * 86400))
            for _ in range(rnd.randint(1, 8)):
                if n >= args.turns:
                    break
                rec = {"id": f"bench-{n:08d}", "session_id": f"bench-s-{session:07d}",
                       "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "query": queries[rnd.randrange(len(queries))],
                       "response": passages[rnd.randrange(len(passages))]}
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
                ts += timedelta(seconds=rnd.randint(10, 400))
                n += 1


if __name__ == "__main__":
    main()
