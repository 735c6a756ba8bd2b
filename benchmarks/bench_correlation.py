"""correlation_report over 1M turns of 20 releases, 10,000 labelled items and 5,000 graded served
answers, on Postgres (issue #10: <= 2 s).

The data is written with INSERT … SELECT generate_series (deterministic, ~1.5 min), its signals
stamped as detected yesterday. Then the command is timed in-process (Django already set up, as in
a worker or the web server): the first report ever (it builds the per-day rollup over every turn),
three more with nothing new (the steady state of the daily check and the page), and one after a
day of new, detected traffic; then each part alone. Prints one JSON line. Run through `make bench`, or by hand on a migrated, empty
Postgres database:  .venv/bin/python benchmarks/bench_correlation.py [--turns N]
Everything it wrote is removed at the end (TRUNCATE … CASCADE), so benchmarks after it start empty.
"""
import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import django

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, models, transaction  # noqa: E402

from evaluation import selectors  # noqa: E402
from evaluation.models import Alarm, OfflineRun, OfflineScore  # noqa: E402
from evaluation.services.rollup import turn_day_counts_refresh  # noqa: E402
from labelling.models import Annotation, BatchItem, LabellingBatch, LabelStudioProject  # noqa: E402
from production.models import SIGNAL_NAMES, Session, Source, Turn, TurnSignals  # noqa: E402
from releases.models import Release  # noqa: E402
from testsets.models import TestItem, TestSet, TestSetVersion  # noqa: E402
from testsets.services.versions import testset_freeze  # noqa: E402

RELEASES = 20
SOURCES = ("web", "app", "api")


def insert_select(model, exprs: dict[str, str], from_sql: str, params: tuple = ()) -> int:
    """INSERT INTO model's table (every column) SELECT exprs … FROM from_sql; columns not in exprs get
    the field's default, so fields other branches add (with defaults) need no change here."""
    cols, values, args = [], [], []
    for f in model._meta.concrete_fields:
        if isinstance(f, models.AutoField) or f.db_default is not models.NOT_PROVIDED:
            continue
        cols.append(connection.ops.quote_name(f.column))
        if f.column in exprs:
            values.append(exprs[f.column].replace("%", "%%"))  # SQL's modulo, not a placeholder
        elif f.null and not f.has_default():
            values.append("NULL")
        else:
            values.append("%s")
            args.append(f.get_db_prep_save(f.get_default(), connection))
    sql = (f"INSERT INTO {model._meta.db_table} ({', '.join(cols)}) SELECT {', '.join(values)} {from_sql}")
    with connection.cursor() as c:
        c.execute(sql, (*args, *params))
        return c.rowcount


def build(turns: int, labelled: int, served: int) -> dict:
    started = time.perf_counter()
    sources = [Source.objects.create(name=f"bench-{s}") for s in SOURCES]
    per_session = 5
    sessions = turns // per_session
    with transaction.atomic():
        insert_select(Session, {"source_id": f"{sources[0].pk} + (g % 3)", "external_id": "'s' || g",
                                "first_seen": "NULL", "last_seen": "NULL", "dirty": "false"},
                      "FROM generate_series(0, %s) g", (sessions - 1,))
        first_session = Session.objects.order_by("id").values_list("id", flat=True).first()
        rels = [Release.objects.create(name=f"bench-rel-{i:02d}", model=f"bench-model-{i:02d}") for i in range(RELEASES)]
        # Release i serves from day 7*i for 21 days; half its turns name it in metadata.release, half
        # are matched by model. Session g // 5 of source g % 3.
        insert_select(Turn, {
            "source_id": f"{sources[0].pk} + ((g / {per_session}) % 3)",
            "external_id": "'t' || g",
            "session_id": f"{first_session} + g / {per_session}",
            "timestamp": f"timestamp with time zone '2026-01-01 00:00+00' + make_interval(days => "
                         f"7 * (g % {RELEASES}) + (g / {RELEASES}) % 21, secs => g % 86400)",
            "position": f"g % {per_session}",
            "query": "'how do i ' || (g % 977)::text", "response": "'answer ' || g",
            "model": f"'bench-model-' || lpad((g % {RELEASES})::text, 2, '0')",
            "metadata": (f"CASE WHEN g % 2 = 0 THEN jsonb_build_object('release', 'bench-rel-' || "
                         f"lpad((g % {RELEASES})::text, 2, '0')) ELSE '{{}}'::jsonb END"),
        }, "FROM generate_series(0, %s) g", (turns - 1,))
    with transaction.atomic():
        # Flags from a hash of the turn id; each release's failure rate grows with its index.
        h = "abs(hashtext(t.id::text || '{salt}')) % 1000"
        # Detected yesterday: the steady state a daily report meets (today's detections come below).
        exprs = {"turn_id": "t.id", "corrected_response": "''", "evidence": "'{}'::jsonb",
                 "detected_at": "now() - interval '1 day'",
                 "failure_candidate": f"{h.format(salt='f')} < 80 + 4 * (t.id % {RELEASES})"}
        for k, name in enumerate(SIGNAL_NAMES):
            exprs[name] = f"{h.format(salt=name)} < {40 + 20 * k}"
        insert_select(TurnSignals, exprs, "FROM production_turn t WHERE t.source_id = ANY(%s)",
                      ([s.pk for s in sources],))
    with transaction.atomic():
        project = LabelStudioProject.objects.create(title="bench", ls_project_id=990001)
        batch = LabellingBatch.objects.create(month="2026-02")
        every = turns // labelled
        insert_select(BatchItem, {
            "batch_id": str(batch.pk), "turn_id": "t.id",
            "stratum": "CASE WHEN s.failure_candidate THEN 'failure' ELSE 'none' END",
            "inclusion_probability": "CASE WHEN s.failure_candidate THEN 1.0 ELSE 0.02 END",
            "query_key": "'k' || t.id", "push_attempted_at": "NULL",
        }, "FROM production_turn t JOIN production_turnsignals s ON s.turn_id = t.id "
           "WHERE t.source_id = ANY(%s) AND t.id %% %s = 0 ORDER BY t.id LIMIT %s",
           ([s.pk for s in sources], every, labelled))
        # One annotation per item, a second on every fifth; incorrect more often on failure candidates.
        for copy in (0, 1):
            insert_select(Annotation, {
                "ls_annotation_id": f"i.id * 2 + {copy}", "project_id": str(project.pk), "item_id": "i.id",
                "ls_task_id": "i.id", "annotator": f"'ann-{copy}'",
                "verdict": ("CASE WHEN abs(hashtext(i.id::text)) % 100 < (CASE WHEN i.stratum = 'failure' "
                            "THEN 70 ELSE 15 END) THEN 'incorrect' WHEN abs(hashtext(i.id::text)) % 100 < 85 "
                            "THEN 'correct' ELSE 'partially_correct' END"),
                "failure_modes": "'[]'::jsonb", "result": "'[]'::jsonb", "deleted": "false", "was_cancelled": "false",
                "received_at": "now()", "updated_at": "now()",
            }, "FROM labelling_batchitem i WHERE i.batch_id = %s" + (" AND i.id %% 5 = 0" if copy else ""),
                (batch.pk,))
    with transaction.atomic():
        testset = TestSet.objects.create(name="bench-correlation")
        draft = TestSetVersion.objects.create(testset=testset, number=1)
        insert_select(TestItem, {
            "version_id": str(draft.pk), "key": "'turn:bench:' || t.external_id", "source": "'bench-web'",
            "query": "t.query", "response": "t.response", "reference_answer": "'ref'", "contexts": "'[]'::jsonb",
            "conversation": "'[]'::jsonb", "verdict": "'correct'", "failure_modes": "'[]'::jsonb",
            "stratum": "'none'", "inclusion_probability": "1.0",
            "provenance": "jsonb_build_object('source', 'bench-web', 'turn_id', t.external_id)",
            "content_sha256": "md5(t.external_id) || md5(t.external_id)",
        }, "FROM production_turn t WHERE t.source_id = %s AND t.id %% 7 = 0 ORDER BY t.id LIMIT %s",
           (sources[0].pk, served))
    version = testset_freeze(name="bench-correlation", note="bench")
    with transaction.atomic():
        for i, rel in enumerate(rels):
            score = 0.9 - 0.01 * i
            OfflineRun.objects.create(release=rel, version=version, mode="import", status="done", items=served,
                                      score=score, ci_low=score - 0.01, ci_high=score + 0.01)
        run = OfflineRun.objects.create(release=rels[0], version=version, mode="served", status="done", items=served)
        insert_select(OfflineScore, {
            "run_id": str(run.pk), "key": "ti.key", "item_id": "ti.id", "turn_id": "t.id",
            "score": "CASE WHEN s.failure_candidate AND abs(hashtext(t.id::text)) % 10 < 8 THEN 0.0 ELSE 1.0 END",
            "verdict": "CASE WHEN s.failure_candidate THEN 'incorrect' ELSE 'correct' END", "created_at": "now()",
        }, "FROM testsets_testitem ti JOIN production_turn t ON ti.key = 'turn:bench:' || t.external_id "
           "JOIN production_turnsignals s ON s.turn_id = t.id WHERE ti.version_id = %s", (version.pk,))
    with connection.cursor() as c:
        c.execute("ANALYZE")
    return {"build_s": round(time.perf_counter() - started, 1), "turns": Turn.objects.count(),
            "releases": Release.objects.count(), "labelled_items": BatchItem.objects.count(),
            "annotations": Annotation.objects.count(), "served_scores": OfflineScore.objects.count()}


def timed(fn, *args, **kw) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def add_day(turns: int) -> None:
    """A new day of traffic for the last release, ingested and detected now."""
    first = Turn.objects.order_by("-id").values_list("id", flat=True).first() + 1
    source = Source.objects.get(name="bench-web")
    # A session of the same source: production_turn's key (source, session) refuses another's.
    session = Session.objects.filter(source=source).order_by("-id").values_list("id", flat=True).first()
    with transaction.atomic():
        insert_select(Turn, {
            "source_id": str(source.pk), "external_id": "'new' || g", "session_id": str(session),
            "timestamp": "timestamp with time zone '2026-06-01 00:00+00' + make_interval(secs => g % 86400)",
            "position": "NULL", "query": "'new question'", "response": "'new answer'",
            "model": f"'bench-model-{RELEASES - 1:02d}'", "metadata": "'{}'::jsonb",
        }, "FROM generate_series(0, %s) g", (turns - 1,))
        insert_select(TurnSignals, {"turn_id": "t.id", "corrected_response": "''", "evidence": "'{}'::jsonb",
                                    "detected_at": "now()", "failure_candidate": "t.id % 10 = 0"},
                      "FROM production_turn t WHERE t.id >= %s", (first,))


def report_once() -> tuple[float, dict]:
    out = io.StringIO()
    t = time.perf_counter()
    call_command("correlation_report", "--json", stdout=out)
    return time.perf_counter() - t, json.loads(out.getvalue())


def clean() -> None:
    with connection.cursor() as c:
        c.execute("TRUNCATE evaluation_offlinescore, evaluation_offlinerun, evaluation_alarm, labelling_annotation, "
                  "labelling_batchitem, labelling_labellingbatch, labelling_labelstudioproject, testsets_testitem, "
                  "testsets_testsetversion, testsets_testset, releases_release, production_turnsignals, "
                  "evaluation_turndaycount, evaluation_rollupstate, "
                  "production_turn, production_session, production_source CASCADE")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=1_000_000)
    ap.add_argument("--labelled", type=int, default=10_000)
    ap.add_argument("--served", type=int, default=5_000)
    ap.add_argument("--keep", action="store_true", help="leave the data in the database")
    args = ap.parse_args()
    assert connection.vendor == "postgresql", "the benchmark runs on Postgres (make bench starts one)"
    if Turn.objects.exists():
        sys.exit("the database holds turns already: run on an empty, migrated database")
    try:
        built = build(args.turns, args.labelled, args.served)
        cold, report = report_once()  # the first report ever also builds the rollup (every day)
        warm = [report_once()[0] for _ in range(3)]  # nothing changed since
        add_day(10_000)
        new_day, _ = report_once()  # a day of new, detected traffic: that day is recomputed
        rels = list(Release.objects.all())
        parts = {
            "rollup_full_rebuild_s": timed(turn_day_counts_refresh, full=True)[0],
            "rollup_refresh_nothing_new_s": timed(turn_day_counts_refresh)[0],
            "rates_of_all_releases_from_rollup_s": timed(selectors.production_rates_many, rels)[0],
            "signal_validity_s": timed(selectors.signal_validity)[0],
            "item_level_s": timed(selectors.item_level)[0],
            "item_level_weekly_s": timed(selectors.item_level_weekly)[0],
            "production_rates_one_release_explicit_days_s": timed(
                selectors.production_rates, rels[5], start="2026-02-05", end="2026-02-11")[0],
        }
        result = {
            **built,
            "report_cold_s": round(cold, 3),
            "report_warm_median_s": round(statistics.median(warm), 3),
            "report_warm_s": [round(w, 3) for w in warm],
            "report_after_a_new_day_s": round(new_day, 3),
            "target_s": 2.0,
            "ok": statistics.median(warm) <= 2.0 and new_day <= 2.0,
            "parts_s": {k: round(v, 3) for k, v in parts.items()},
            "rank_correlation": report["rank_correlation"],
            "item_level_n": report["item_level"]["n"],
            "signal_validity_rows": len(report["signal_validity"]),
            "alarms": len(report["alarms"]),
            "cpu_count": os.cpu_count(),
        }
        print(json.dumps(result))
    finally:
        if not args.keep:
            Alarm.objects.all().delete()
            clean()


if __name__ == "__main__":
    main()
