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


def run(semantic: bool) -> dict:
    env = {**os.environ, "SIGNALS_SEMANTIC": "true" if semantic else "false"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "manage.py", "detect_signals", "--full", "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    # CPU seconds of the detect_signals process (all its threads), start-up included: on a shared
    # machine the wall clock also counts other processes' turns on the two cores.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"semantic": semantic, "turns": counts["turns"], "seconds": round(elapsed, 2),
            "turns_per_s": round(counts["turns"] / elapsed), "process_cpu_seconds": round(cpu, 2),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "peak_rss_mb": round(max(after.ru_maxrss, before.ru_maxrss) / 1024, 1), "counts": counts}


if __name__ == "__main__":
    modes = sys.argv[1:] or ["lexical", "semantic"]
    for mode in modes:
        print(json.dumps(run(mode == "semantic")), flush=True)
