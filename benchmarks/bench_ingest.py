"""Ingest throughput vs a raw COPY of the same rows, in the same run, on the same Postgres.

Run through `make bench` (it starts Postgres). Prints one JSON line with the figures.
"""
import argparse
import csv
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import django

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")
django.setup()

from django.db import connection  # noqa: E402

from production.models import Source  # noqa: E402


def raw_copy_seconds(log: Path) -> tuple[float, int]:
    """COPY the same turn rows, pre-rendered as CSV, into a table shaped like production_turn
    (columns, indexes and foreign keys), committed: the floor for writing these rows."""
    with connection.cursor() as c:
        c.execute("DROP TABLE IF EXISTS bench_raw_turn")
        # Same columns, indexes, defaults and foreign keys (checked at commit, as Django declares them).
        c.execute("CREATE TABLE bench_raw_turn (LIKE production_turn INCLUDING ALL)")
        c.execute("ALTER TABLE bench_raw_turn ADD FOREIGN KEY (source_id) REFERENCES production_source (id) "
                  "DEFERRABLE INITIALLY DEFERRED, ADD FOREIGN KEY (session_id) REFERENCES production_session (id) "
                  "DEFERRABLE INITIALLY DEFERRED")
        c.execute("SELECT min(id) FROM production_source")
        source_id = c.fetchone()[0]
        c.execute("SELECT min(id) FROM production_session")
        session_id = c.fetchone()[0]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    rows = 0
    with open(log, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            w.writerow((source_id, r["id"], session_id, r["timestamp"], r["query"], r["response"], "", "[]", r.get("model", ""),
                        r.get("latency_ms", ""), "{}", r["timestamp"]))
            rows += 1
    buf.seek(0)
    cols = "source_id, external_id, session_id, timestamp, query, response, user_id, contexts, model, latency_ms, " \
           "metadata, ingested_at"
    t0 = time.perf_counter()
    with connection.cursor() as c:
        c.copy_expert(f"COPY bench_raw_turn ({cols}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (user_id, response))",
                      buf)
        connection.commit() if not connection.get_autocommit() else None
    elapsed = time.perf_counter() - t0
    with connection.cursor() as c:
        c.execute("DROP TABLE bench_raw_turn")
    return elapsed, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    args = ap.parse_args()
    log = Path(args.log)
    with connection.cursor() as c:
        c.execute("TRUNCATE production_event, production_turn, production_session, production_rejectedline, "
                  "production_ingestjob, production_source CASCADE")
    Source.objects.create(name="bench")
    # ingest runs as its own process, exactly as a user runs it, so its peak RSS is its own
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "manage.py", "ingest", str(log), "--source", "bench", "--json"],
                          cwd=REPO, capture_output=True, text=True, check=True)
    ingest_s = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    copy_s, rows = raw_copy_seconds(log)
    print(json.dumps({
        "turns": rows, "ingest_seconds": round(ingest_s, 2), "ingest_turns_per_s": round(rows / ingest_s),
        "raw_copy_seconds": round(copy_s, 2), "raw_copy_rows_per_s": round(rows / copy_s),
        "ratio_vs_copy": round(copy_s / ingest_s, 3), "ingest_peak_rss_mb": round(peak_mb, 1),
        "log_bytes": log.stat().st_size, "summary": summary,
    }))


if __name__ == "__main__":
    main()
