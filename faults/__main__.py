"""python -m faults [--runs N] [--seed S] [--scenario NAME ...] [--table FILE]: run the fault suite
(the environment is set by scripts/faults.sh) and print scenarios x runs x violations."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import django


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m faults", description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="runs of each scenario (default 10: 100 in all)")
    parser.add_argument("--seed", type=int, default=1, help="fault moments are drawn from this seed")
    parser.add_argument("--scenario", action="append", default=[], help="only the scenarios whose name has this")
    parser.add_argument("--table", help="also write the table (Markdown) to this file")
    args = parser.parse_args(argv)

    # Stopped (timeout, Ctrl-C from a wrapper): the workers and the web server started here go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")
    django.setup()
    from django.db import connection

    from . import scenarios, services as svc

    with connection.cursor() as c:
        c.execute("SHOW fsync")
        fsync = c.fetchone()[0]
        c.execute("SHOW synchronous_commit")
        sync = c.fetchone()[0]
    redis_port = int(os.environ["FAULT_REDIS_PORT"])
    print(f"PostgreSQL fsync={fsync} synchronous_commit={sync}; Redis on {redis_port} with appendfsync always; "
          f"seed {args.seed}, {args.runs} run(s) per scenario", flush=True)
    if fsync != "on" or sync != "on":
        print("PostgreSQL is not durable: start it with PG_DURABLE=1 (scripts/faults.sh does)", file=sys.stderr)
        return 2

    from .llm_scenarios import WORKER_ENV

    ctx = scenarios.Context(worker_env={"INGEST_BATCH_SIZE": "500", **WORKER_ENV}, redis_port=redis_port)
    ctx.web = svc.WebServer(int(os.environ["FAULT_WEB_PORT"]), {}).start()
    ctx.new_worker()
    names = [n for n in scenarios.SCENARIOS if not args.scenario or any(s in n for s in args.scenario)]
    results: dict[str, list[list[str]]] = {n: [] for n in names}
    landed: dict[str, int] = dict.fromkeys(names, 0)
    started = time.monotonic()
    try:
        for run in range(args.runs):
            for name in names:
                t0 = time.monotonic()
                violations = scenarios.run_one(ctx, name, args.seed, run)
                results[name].append(violations)
                landed[name] += ctx.landed
                print(f"run {run + 1}/{args.runs} {name}: {len(violations)} violation(s)"
                      f"{'' if ctx.landed else ' (the fault came after the work was done)'} "
                      f"({time.monotonic() - t0:.0f} s){''.join(chr(10) + '    ' + v for v in violations)}", flush=True)
    finally:
        for w in ctx.workers:
            w.kill_all()
        ctx.web.stop()

    width = max(len(n) for n in names)
    lines = [f"| {'scenario'.ljust(width)} | runs | fault mid-work | runs with violations | violations |",
             f"|{'-' * (width + 2)}|-----:|---------------:|---------------------:|-----------:|"]
    for name in names:
        runs = results[name]
        lines.append(f"| {name.ljust(width)} | {len(runs):4d} | {landed[name]:14d} | {sum(1 for v in runs if v):20d} | "
                     f"{sum(len(v) for v in runs):10d} |")
    total = sum(len(v) for runs in results.values() for v in runs)
    lines.append(f"\n{sum(len(r) for r in results.values())} runs, {total} violations, seed {args.seed}, "
                 f"{(time.monotonic() - started) / 60:.1f} min")
    table = "\n".join(lines)
    print("\n" + table)
    if args.table:
        with open(args.table, "w") as f:
            f.write(table + "\n")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
