"""Freeze a 100,000-item test set version, then export it in every format, timing each.

Run through `make bench` (Postgres up, migrated). Prints one JSON line: the machine's load average, insert and
freeze seconds (wall and CPU of this process), the size of the files the freeze keeps, then per format the wall
and CPU seconds of RUNS exports (fastest, median) and the output size, and the peak RSS of the export command in
its own process. Target: every format <= 1 s. The machine is shared: the CPU seconds of the process say what the
export costs when the wall clock is stretched by other work (both are printed; the target is the wall clock).
    python benchmarks/bench_exports.py [N_ITEMS]
"""
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
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
from testsets.exports.store import folder  # noqa: E402
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


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def warm_up(d: Path) -> None:
    """Export a 3-item version in every format first: the imports (pyarrow.compute, parquet) are paid once per
    process, by whatever exports first, and are not what an export of 100k items costs."""
    name = f"bench-warm-{uuid.uuid4().hex[:8]}"
    draft = TestSetVersion.objects.create(testset=TestSet.objects.create(name=name), number=1)
    TestItem.objects.bulk_create(list(items(draft, 3)))
    version = testset_freeze(name=name)
    for fmt in FORMATS:
        export_version(version, fmt, d / f"warm-{fmt}")


def main(n: int = 100_000, runs: int = 3) -> None:
    out = {"load_before": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
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
    out["insert_seconds"] = round(time.perf_counter() - t0, 2)
    version, wall, cpu = timed(lambda: testset_freeze(name=name))
    out.update(items=version.item_count, freeze_seconds=round(wall, 2), freeze_cpu_seconds=round(cpu, 2))
    out["kept_mb"] = {p.suffix[1:]: round(p.stat().st_size / 2**20, 1) for p in folder().glob(f"{version.sha256}.*")}
    out["formats"] = {}
    d = Path(tempfile.mkdtemp(prefix="bench-exports-"))
    try:
        # Right after the bulk insert the first read of the new rows is slower (hint bits, autoanalyze):
        # vacuumed/analyzed as autovacuum would have done by the time a frozen version is downloaded.
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {TestItem._meta.db_table}")
        warm_up(d)
        # Peak memory of the export command in its own process (it works a record batch at a time).
        child = ("import json, sys, time, django; django.setup(); "
                 "from django.core.management import call_command; t = time.perf_counter(); "
                 "call_command('export_testset', *sys.argv[1:]); "
                 "print(json.dumps({'seconds': round(time.perf_counter() - t, 2), "
                 "'peak_rss_mb': [round(int(l.split()[1]) / 1024, 1) for l in open('/proc/self/status') "
                 "if l.startswith('VmHWM')][0]}))")  # ru_maxrss would include the parent's, from fork
        for fmt in ("jsonl", "ragas"):
            proc = subprocess.run([sys.executable, "-c", child, name, "--version", "1", "--format", fmt,
                                   "--output", str(d / f"cmd.{fmt}"), "--json"], cwd=REPO, check=True,
                                  capture_output=True, text=True)
            out[f"{fmt}_command"] = json.loads(proc.stdout.strip().splitlines()[-1])
        for fmt in FORMATS:
            walls, cpus = [], []
            for k in range(runs):
                path, wall, cpu = timed(lambda: export_version(version, fmt, d / f"{name}-{k}.{fmt}"))
                walls.append(wall)
                cpus.append(cpu)
                if fmt == "jsonl":  # the canonical export is exactly what the version's sha256 covers
                    out["jsonl_sha256_is_version_sha256"] = _sha256(path) == version.sha256
                size = sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            out["formats"][fmt] = {"seconds": round(min(walls), 2), "median_seconds": round(statistics.median(walls), 2),
                                   "cpu_seconds": round(min(cpus), 2), "mb": round(size / 2**20, 1)}
    finally:
        shutil.rmtree(d)
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["every_format_target_met"] = all(f["seconds"] <= 1.0 for f in out["formats"].values())
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
