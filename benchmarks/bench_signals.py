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
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "manage.py", "detect_signals", "--full", "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"semantic": semantic, "turns": counts["turns"], "seconds": round(elapsed, 2),
            "turns_per_s": round(counts["turns"] / elapsed), "peak_rss_mb": round(max(peak, before) / 1024, 1),
            "counts": counts}


if __name__ == "__main__":
    modes = sys.argv[1:] or ["lexical", "semantic"]
    for mode in modes:
        print(json.dumps(run(mode == "semantic")), flush=True)
