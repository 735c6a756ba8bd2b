"""Judge 1,000 shadow pairs (2,000 calls) against a local OpenAI-compatible judge that answers
after 200 ms, through the real openai client and the real database; then the week's report.

The judge server runs in its own process (tests/fake_openai.py), so its threads do not share this
process's interpreter lock. Run through `make bench` (Postgres up), or alone:
    .venv/bin/python benchmarks/bench_shadow.py [--pairs 1000] [--latency 0.2] [--concurrency N]
"""
import argparse
import json
import multiprocessing
import os
import resource
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")


def serve(latency: float, port_out) -> None:
    from tests.fake_openai import FakeOpenAI

    verdicts = ["A", "B", "tie"]

    def judge(body):
        # A verdict that depends on the prompt, so both orders are answered like a real judge would.
        text = body["messages"][-1]["content"]
        v = verdicts[sum(map(ord, text[-200:])) % 3]
        return ("slow", latency, json.dumps({"rationale": "benchmark judge", "verdict": v,
                                             "failure_modes_a": ["FORMAT"] if v == "B" else [],
                                             "failure_modes_b": []}))

    server = FakeOpenAI(judge)
    port_out.send(server.url)
    while True:
        time.sleep(3600)


def build_pairs(n: int):
    from production.models import Session, Source, Turn
    from production.services.ingest import source_get_or_create
    from releases.models import Release
    from shadow.models import ShadowPair

    # A second run starts from scratch (the pairs, verdicts and turns of the last one go).
    Source.objects.filter(name="bench-shadow").delete()
    Release.objects.filter(name="bench-candidate").delete()
    src = source_get_or_create(name="bench-shadow")
    rel = Release.objects.create(name="bench-candidate", model="bench-model")
    start = date(2026, 9, 1)
    sessions = Session.objects.bulk_create([Session(source=src, external_id=f"bench-s{i}") for i in range(n // 2)])
    turns = Turn.objects.bulk_create([
        Turn(source=src, session=sessions[i // 2], external_id=f"bench-t{i}", query=f"How do I do thing {i}?",
             response=f"Served answer {i}: open settings, then choose option {i % 7}.", model="served-model",
             contexts=[f"Doc {i}: option {i % 7} does thing {i}."],
             timestamp=datetime(2026, 9, 1, 8, tzinfo=timezone.utc) + timedelta(hours=i % 168))
        for i in range(n)], batch_size=1000)
    ShadowPair.objects.bulk_create([
        ShadowPair(turn=t, release=rel, origin="replay", session_id=t.session_id,
                   day=start + timedelta(days=(k % 168) // 24),
                   candidate_answer=f"Candidate answer {k}: go to settings > option {k % 7}; it does thing {k}.")
        for k, t in enumerate(turns)], batch_size=1000)
    return rel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=None)
    args = parser.parse_args()

    import django

    django.setup()
    from django.apps import apps
    from django.conf import settings
    from django.test import override_settings

    from shadow import selectors
    from shadow.services import judge
    from taxonomy.models import FailureMode

    if not FailureMode.objects.exists():
        __import__("importlib").import_module("taxonomy.migrations.0002_seed_default_taxonomy").seed(apps, None)
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(args.latency, child), daemon=True)
    server.start()
    url = parent.recv()
    concurrency = args.concurrency or settings.JUDGE_CONCURRENCY
    try:
        rel = build_pairs(args.pairs)
        with override_settings(JUDGE_BASE_URL=url, JUDGE_API_KEY="sk-bench", JUDGE_MODEL="bench-judge",
                               JUDGE_CONCURRENCY=concurrency, LLM_TIMEOUT_SECONDS=30):
            run = judge.judge_run_create(release=rel.name)
            cpu0, t0 = time.process_time(), time.perf_counter()
            run = judge.shadow_judge(run_id=run.pk)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        t1 = time.perf_counter()
        report = selectors.shadow_report(rel.name, 7)
        report_s = time.perf_counter() - t1
    finally:
        server.terminate()
    floor = 2 * args.pairs * args.latency / concurrency
    print(json.dumps({
        "pairs": args.pairs, "judge_calls": run.requests, "latency_s": args.latency, "concurrency": concurrency,
        "judge_wall_s": round(wall, 2), "judge_cpu_s": round(cpu, 2), "floor_s": round(floor, 2),
        "calls_per_s": round(run.requests / wall, 1), "judged": run.judged, "failed": run.failed,
        "status": run.status, "report_s": round(report_s, 3), "report_pairs": report["pairs"],
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "target_s": 30, "met": wall <= 30 and run.judged == args.pairs,
    }))


if __name__ == "__main__":
    main()
