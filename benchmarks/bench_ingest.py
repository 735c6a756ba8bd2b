"""Ingest throughput vs a raw COPY of the same rows, in the same run, on the same Postgres.

    python benchmarks/bench_ingest.py LOG [--repeat N] [--profile OUT.svg]

The baseline (issue #14) is the physical floor for storing these rows: a `COPY` of (id, source,
session, timestamp, query, response), rendered beforehand and held in memory, into a table with
a primary key only, committed. Ingest is timed as a user runs it: `manage.py ingest LOG --json`
in its own process (start-up included), whose peak RSS is its own. The two alternate `--repeat`
times on an emptied database; the median of each is compared. The last ingest stays in the
database (the signals benchmark reads it). Prints one JSON line.

Both sides run as child processes of this small one, and the ingest's peak RSS is read from
`wait4` for that process alone (a child forked from a process holding the rendered rows would
inherit their pages into its figure).
"""
import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import django

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")
django.setup()

import orjson  # noqa: E402
from django.db import connection  # noqa: E402

from production.models import Source  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from proc_cpu import postgres_cpu  # noqa: E402

RAW_TABLE = """CREATE UNLOGGED TABLE IF NOT EXISTS bench_raw_turn (id text PRIMARY KEY, source text NOT NULL,
    session text NOT NULL, timestamp timestamptz, query text NOT NULL, response text NOT NULL)"""


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def raw_rows(log: Path) -> tuple[bytes, int]:
    """The log's turns as COPY text rows (untimed: the baseline pays for writing only)."""
    out, n = [], 0
    with open(log, "rb") as f:
        for line in f:
            r = orjson.loads(line)
            out.append("\t".join((_copy_text(r["id"]), "bench", _copy_text(r["session_id"]), r["timestamp"],
                                  _copy_text(r["query"]), _copy_text(r["response"]))) + "\n")
            n += 1
    return "".join(out).encode(), n


def raw_copy_seconds(log: Path) -> float:
    proc = subprocess.run([sys.executable, __file__, str(log), "--raw-copy-only"], cwd=REPO, capture_output=True,
                          text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def _raw_copy(log: Path) -> None:
    data, _ = raw_rows(log)
    with connection.cursor() as c:
        c.execute("DROP TABLE IF EXISTS bench_raw_turn")
        # A logged table, as production_turn is: the same WAL cost per byte.
        c.execute(RAW_TABLE.replace("UNLOGGED ", ""))
        c.execute("CHECKPOINT")
    t0 = time.perf_counter()
    with connection.cursor() as c:  # autocommit: COPY commits when it returns
        c.copy_expert("COPY bench_raw_turn FROM STDIN", io.BytesIO(data), size=1 << 20)
    elapsed = time.perf_counter() - t0
    with connection.cursor() as c:
        c.execute("DROP TABLE bench_raw_turn")
    print(elapsed)


def _schema_floor(log: Path) -> None:
    """COPY the same turns, rendered as ingest renders them (all production_turn columns, the session ids
    ingest gave them), into copies of production_turn: with its indexes, then with its foreign keys too.
    What the schema itself costs, next to the raw COPY; run after an ingest (its sessions are used)."""
    from production.services.ingest.copy_text import TURN_COLUMNS, turn_tail
    from production.contract import parse_record

    with connection.cursor() as c:
        c.execute("SELECT id FROM production_source WHERE name = 'bench'")
        source_id = c.fetchone()[0]
        c.execute("SELECT external_id, id FROM production_session WHERE source_id = %s", [source_id])
        sessions = {k: str(v).encode() for k, v in c.fetchall()}
    parts = []
    with open(log, "rb") as f:
        for line in f:
            t = parse_record(orjson.loads(line))
            parts += [sessions[t.session_external_id], b"\t", turn_tail(source_id, t)]
    data = b"".join(parts)
    del parts
    out = {}
    # Three variants: no foreign key; the two single keys production_turn had before migration 0008;
    # the one composite key (source_id, session_id) -> session (source_id, id) it has since.
    for name, extra in (("indexes", ""), ("indexes_and_foreign_keys",
                         "ALTER TABLE bench_floor ADD FOREIGN KEY (source_id) REFERENCES production_source (id) "
                         "DEFERRABLE INITIALLY DEFERRED, ADD FOREIGN KEY (session_id) REFERENCES production_session (id) "
                         "DEFERRABLE INITIALLY DEFERRED"),
                        ("indexes_and_one_composite_foreign_key",
                         "ALTER TABLE bench_floor ADD FOREIGN KEY (source_id, session_id) REFERENCES production_session "
                         "(source_id, id) DEFERRABLE INITIALLY DEFERRED")):
        with connection.cursor() as c:
            c.execute("DROP TABLE IF EXISTS bench_floor")
            c.execute("CREATE TABLE bench_floor (LIKE production_turn INCLUDING ALL)")
            if extra:
                c.execute(extra)
            c.execute("CHECKPOINT")
        t0 = time.perf_counter()
        with connection.cursor() as c:
            c.copy_expert(f"COPY bench_floor ({', '.join(TURN_COLUMNS)}) FROM STDIN", io.BytesIO(data), size=1 << 20)
        out[name] = round(time.perf_counter() - t0, 2)
        with connection.cursor() as c:
            c.execute("DROP TABLE bench_floor")
    print(json.dumps(out))


def empty_database() -> None:
    with connection.cursor() as c:
        c.execute("TRUNCATE production_event, production_turn, production_session, production_rejectedline, "
                  "production_ingestjob, production_source RESTART IDENTITY CASCADE")
        c.execute("CHECKPOINT")
    Source.objects.create(name="bench")


def ingest_seconds(log: Path, profile: str | None) -> tuple[float, dict, float, float, float]:
    """Wall seconds, the --json summary, peak RSS (MB), the ingest process's CPU seconds and its
    PostgreSQL backends' CPU seconds: what the two cores spent on it."""
    cmd = [sys.executable, "manage.py", "ingest", str(log), "--source", "bench", "--json"]
    if profile:
        cmd = ["py-spy", "record", "--subprocesses", "--rate", "200", "--format", "speedscope"
               if profile.endswith(".json") else "flamegraph", "-o", profile, "--", *cmd]
    port = connection.settings_dict["PORT"]
    pg0 = postgres_cpu(port)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        elapsed = time.perf_counter() - t0
        pg = postgres_cpu(port) - pg0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code:
            sys.exit(f"ingest failed ({code}): {err.read().decode()[-2000:]}")
        return (elapsed, json.loads(out.read().decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024,
                usage.ru_utime + usage.ru_stime, pg)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--profile", help="run ingest under py-spy, writing this flame graph (.svg) or speedscope (.json)")
    ap.add_argument("--schema-floor", action="store_true",
                    help="also COPY the rendered turns into copies of production_turn (indexes; + foreign keys)")
    ap.add_argument("--raw-copy-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--schema-floor-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    log = Path(args.log).resolve()
    if args.raw_copy_only:
        _raw_copy(log)
        return
    if args.schema_floor_only:
        _schema_floor(log)
        return
    with open(log, "rb") as f:
        rows = sum(1 for _ in f)
    copies, ingests, peaks, cpus, pgs, summary = [], [], [], [], [], None
    for _ in range(args.repeat):
        copies.append(raw_copy_seconds(log))
        empty_database()
        elapsed, summary, peak, cpu, pg = ingest_seconds(log, args.profile)
        ingests.append(elapsed)
        peaks.append(peak)
        cpus.append(cpu)
        pgs.append(pg)
    peak_mb = max(peaks)
    copy_s, ingest_s = statistics.median(copies), statistics.median(ingests)
    floor = None
    if args.schema_floor:
        proc = subprocess.run([sys.executable, __file__, str(log), "--schema-floor-only"], cwd=REPO,
                              capture_output=True, text=True, check=True)
        floor = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps({
        "turns": rows, "log_bytes": log.stat().st_size,
        "ingest_seconds": round(ingest_s, 2), "ingest_turns_per_s": round(rows / ingest_s),
        "raw_copy_seconds": round(copy_s, 2), "raw_copy_rows_per_s": round(rows / copy_s),
        "ratio_vs_copy": round(copy_s / ingest_s, 3), "ingest_peak_rss_mb": round(peak_mb, 1),
        # CPU seconds (medians) of the ingest process and of PostgreSQL during it: at 0.5 of the raw
        # COPY, both together must fit in (cores x 2 x raw COPY seconds).
        "ingest_process_cpu_seconds": round(statistics.median(cpus), 2),
        "ingest_postgres_cpu_seconds": round(statistics.median(pgs), 2),
        "runs": {"ingest_seconds": [round(x, 2) for x in ingests], "raw_copy_seconds": [round(x, 2) for x in copies]},
        "schema_floor_copy_seconds": floor, "load_average": [round(x, 2) for x in os.getloadavg()],
        "summary": summary,
    }))


if __name__ == "__main__":
    main()
