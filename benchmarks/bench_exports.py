"""Freeze a 100,000-item test set version, then export it in every format, timing each.

Run through `make bench` (Postgres up, migrated). Prints one JSON line: insert and freeze seconds, the first
JSONL export right after the freeze, then per format seconds and output size, and the peak RSS of the
export command in its own process (exports stream: it does not grow with the item count). Target: JSONL <= 2 s.
    python benchmarks/bench_exports.py [N_ITEMS]
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import django

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")
django.setup()

from django.db import connection  # noqa: E402

from testsets.exports import FORMATS, export_version  # noqa: E402
from testsets.models import TestItem, TestSet, TestSetVersion  # noqa: E402
from testsets.services.versions import testset_freeze  # noqa: E402

WORDS = ("refund policy account password reset invoice shipping delay order tracking warranty battery "
         "screen café naïve 東京 \"quoted\", comma\nnewline").split(" ")


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def items(version: TestSetVersion, n: int):
    rng = random.Random(42)
    for i in range(n):
        generated = i % 10 == 0
        source = "generated" if generated else "bench"
        yield TestItem(
            version=version, key=f"turn:{source}:{i:07d}", source=source, query=text(rng, 25),
            response=text(rng, 60), reference_answer=text(rng, 40) if i % 3 else "",
            contexts=[text(rng, 45) for _ in range(rng.randint(0, 3))],
            conversation=[{"role": "user", "content": text(rng, 10)}] if i % 4 == 0 else [],
            verdict=("correct", "incorrect", "partially_correct")[i % 3],
            failure_modes=["hallucination"] if i % 3 else [], stratum="generated" if generated else "failure",
            inclusion_probability=None if generated else 0.05,
            provenance={"turn_id": str(i), "source": source, "session_id": f"s{i // 5}", "model": "m-1",
                        "timestamp": "2026-01-01T00:00:00+00:00", "annotation_ids": [i], "annotators": ["a1"],
                        "signals": {"followed_up": bool(i % 2)}, "generation": {"method": "paraphrase"}
                        if generated else None},
            content_sha256=f"{i:064x}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main(n: int = 100_000) -> None:
    name = f"bench-export-{uuid.uuid4().hex[:8]}"
    testset = TestSet.objects.create(name=name)
    draft = TestSetVersion.objects.create(testset=testset, number=1)
    t0 = time.perf_counter()
    batch = []
    for item in items(draft, n):
        batch.append(item)
        if len(batch) == 5000:
            TestItem.objects.bulk_create(batch)
            batch = []
    if batch:
        TestItem.objects.bulk_create(batch)
    insert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    version = testset_freeze(name=name)
    freeze_s = time.perf_counter() - t0
    out = {"items": version.item_count, "insert_seconds": round(insert_s, 2), "freeze_seconds": round(freeze_s, 2),
           "formats": {}}
    d = Path(tempfile.mkdtemp(prefix="bench-exports-"))
    try:
        # Right after the bulk insert the first read of the new rows is slower (hint bits, autoanalyze):
        # timed apart, then the table is vacuumed/analyzed as autovacuum would have done by the time a
        # frozen version is downloaded.
        t0 = time.perf_counter()
        export_version(version, "jsonl", d / "first.jsonl")
        out["jsonl_first_after_freeze_seconds"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {TestItem._meta.db_table}")
        out["vacuum_analyze_seconds"] = round(time.perf_counter() - t0, 2)
        # Peak memory of the export command in its own process (the exports stream: it stays flat).
        child = ("import json, sys, time, django; django.setup(); "
                 "from django.core.management import call_command; t = time.perf_counter(); "
                 "call_command('export_testset', *sys.argv[1:]); "
                 "print(json.dumps({'seconds': round(time.perf_counter() - t, 2), "
                 "'peak_rss_mb': [round(int(l.split()[1]) / 1024, 1) for l in open('/proc/self/status') "
                 "if l.startswith('VmHWM')][0]}))")  # ru_maxrss would include the parent's, from fork
        proc = subprocess.run([sys.executable, "-c", child, name, "--version", "1", "--format", "jsonl",
                               "--output", str(d / "cmd.jsonl"), "--json"], cwd=REPO, check=True,
                              capture_output=True, text=True)
        out["jsonl_command"] = json.loads(proc.stdout.strip().splitlines()[-1])
        for fmt in FORMATS:
            t0 = time.perf_counter()
            path = export_version(version, fmt, d / f"{name}.{fmt}")
            elapsed = time.perf_counter() - t0
            if fmt == "jsonl":  # the canonical export is exactly what the version's sha256 covers
                out["jsonl_sha256_is_version_sha256"] = _sha256(path) == version.sha256
            size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
            out["formats"][fmt] = {"seconds": round(elapsed, 2), "items_per_s": round(n / elapsed),
                                   "mb": round(size / 2**20, 1)}
    finally:
        shutil.rmtree(d)
    out["jsonl_target_met"] = out["formats"]["jsonl"]["seconds"] <= 2.0
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
