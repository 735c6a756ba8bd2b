"""detect_signals throughput and peak memory over an ingested log (lexical stage, then semantic).

Run through `make bench`; expects the log already ingested as source "bench" by bench_ingest.py.
"""
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")


def db():
    import django
    from django.db import connection

    django.setup()
    return connection


SEMANTIC = ("(s.evidence->'rephrased'->>'stage' = 'semantic' OR s.evidence->'followed_up'->>'stage' = 'semantic')")


def encoder_work(connection) -> dict:
    """Pairs the semantic stage embedded (their evidence says so) and the distinct queries in them:
    on a log whose queries are all distinct, the texts the encoder had to embed. The texts are also
    written to out/encoder-texts.jsonl: bench_encoder.py times the encoder alone on exactly them."""
    with connection.cursor() as c:
        c.execute(f"SELECT count(*) FROM production_turnsignals s WHERE {SEMANTIC}")
        pairs = c.fetchone()[0]
        c.execute(f"""SELECT t.query FROM production_turn t WHERE t.id IN (
                        SELECT s.turn_id FROM production_turnsignals s WHERE {SEMANTIC})
                      OR t.external_id IN (
                        SELECT coalesce(s.evidence->'rephrased'->>'next_turn_id',
                                        s.evidence->'followed_up'->>'next_turn_id')
                          FROM production_turnsignals s WHERE {SEMANTIC})""")
        texts = list(dict.fromkeys(q for (q,) in c.fetchall()))
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    with open(out / "encoder-texts.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"query": q}, ensure_ascii=False) + "\n" for q in texts)
    return {"encoder_pairs": pairs, "encoder_texts": len(texts)}


def run(semantic: bool) -> dict:
    from proc_cpu import postgres_cpu

    connection = db()
    port = connection.settings_dict["PORT"]
    env = {**os.environ, "SIGNALS_SEMANTIC": "true" if semantic else "false"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pg0 = postgres_cpu(port)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "manage.py", "detect_signals", "--full", "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    pg = postgres_cpu(port) - pg0
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    # CPU seconds of the detect_signals process (all its threads), start-up included: on a shared
    # machine the wall clock also counts other processes' turns on the two cores.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    n = counts["turns"]
    if not n:
        sys.exit("detect_signals found no turns: ingest a log first (make bench does)")
    extra = encoder_work(connection) if semantic else {}
    return {"semantic": semantic, "turns": n, "seconds": round(elapsed, 2),
            "turns_per_s": round(n / elapsed), "process_cpu_seconds": round(cpu, 2),
            # PostgreSQL's own CPU for the same run (its backends), and both per turn: on 2 cores a
            # rate of R turns/s leaves at most 2e6 / R microseconds of CPU a turn for everything.
            "postgres_cpu_seconds": round(pg, 2), "process_cpu_us_per_turn": round(1e6 * cpu / n, 1),
            "postgres_cpu_us_per_turn": round(1e6 * pg / n, 1), **extra,
            "load_average_1m": round(os.getloadavg()[0], 2),
            "peak_rss_mb": round(max(after.ru_maxrss, before.ru_maxrss) / 1024, 1), "counts": counts}


if __name__ == "__main__":
    modes = sys.argv[1:] or ["lexical", "semantic"]
    for mode in modes:
        print(json.dumps(run(mode == "semantic")), flush=True)
