"""Peak memory of reading a JSON-array ingest body: stream-parsed (ijson, what ingest does) against
parsing it whole (orjson.loads, what it did). No database: the reader's items are consumed and dropped.

    .venv/bin/python benchmarks/bench_ingest_array.py                  # 10, 40 and 100 MB bodies
    .venv/bin/python benchmarks/bench_ingest_array.py --sizes 20 --json

The body is written to a temporary file first; each measurement runs in a fresh child process,
which reads the file's bytes (as the API holds a request body), notes its peak resident set
(ru_maxrss), parses the body, and reports the growth of the peak: the memory the parsing took.
Bounded memory shows as a growth that stays flat as the body grows; parsing whole grows with it.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def body(mb: int) -> bytes:
    rec = {"id": "", "session_id": "s-1", "timestamp": "2026-10-01T09:00:00Z", "query": "how do I reset my password " * 8,
           "response": "Open settings, then security, then reset. " * 12, "contexts": ["a passage " * 30],
           "metadata": {"channel": "web", "lang": "en", "n": 3}}
    parts, size, i = [], 0, 0
    while size < mb * 1_000_000:
        rec["id"] = f"t-{i}"
        piece = json.dumps(rec).encode()
        parts.append(piece)
        size += len(piece) + 1
        i += 1
    return b"[" + b",".join(parts) + b"]"


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _child(mode: str, path: str, q) -> None:
    import io

    import django
    import os
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    django.setup()
    import orjson

    from production.contract import DEFAULT_LIMITS, parse_record
    from production.readers import read_json_array

    data = Path(path).read_bytes()
    before = _peak()
    start = time.process_time()
    n = 0
    if mode == "ijson":
        for _ in read_json_array(io.BytesIO(data), DEFAULT_LIMITS):
            n += 1
    else:  # the old reader: the whole array's objects at once
        for value in orjson.loads(data):
            parse_record(value, DEFAULT_LIMITS)
            n += 1
    q.put({"mode": mode, "body_mb": len(data) / 1e6, "records": n, "peak_growth_mb": (_peak() - before) / 1e6,
           "growth_per_body_byte": (_peak() - before) / len(data), "cpu_s": time.process_time() - start})


def measure(mode: str, path: str) -> dict:
    q = mp.Queue()
    p = mp.Process(target=_child, args=(mode, path, q))
    p.start()
    p.join()
    return q.get()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,40,100", help="body sizes in MB")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in args.sizes.split(","):
            path = Path(tmp) / f"body-{mb}.json"
            path.write_bytes(body(int(mb)))
            rows += [measure(mode, str(path)) for mode in ("ijson", "orjson-whole")]
            path.unlink()
    if args.json:
        print(json.dumps(rows))
        return
    print("| reader | body | records | peak memory growth | growth / body size | CPU |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['body_mb']:.0f} MB | {r['records']} | {r['peak_growth_mb']:.1f} MB | "
              f"{r['growth_per_body_byte']:.2f}x | {r['cpu_s']:.1f} s |")


if __name__ == "__main__":
    main()
