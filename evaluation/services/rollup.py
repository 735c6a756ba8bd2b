"""Keep TurnDayCount current: recompute the (release key, source, day) counts of every day whose
turns had signals (re)detected since the last refresh.

Signal detection stamps each TurnSignals row with detected_at, new turns included (ingest dirties
their session, detection writes their signals). A refresh recomputes the days of the rows stamped
after the previous refresh's mark. The mark is the newest stamp seen, but never later than SLACK
before the refresh started: a detection transaction still open then commits rows stamped before
it, and they are taken in next time (recomputing a day twice is harmless: a day's rows are
replaced, never added to). So after a detection run its days are recomputed for SLACK at most.

On Postgres a refresh first reads the table's change counters (pg_stat: inserts, updates and
deletes, this transaction's included) and skips its scan when they have not moved: most refreshes
find nothing new. Counters reach pg_stat within about a second of a commit, so a detection that
just committed is at worst taken in by the next refresh.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone as dt_timezone

from django.db import connection, transaction
from django.db.models import BooleanField, Case, Count, Max, Q, Sum, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import TruncDate
from django.utils import timezone

from production.models import Turn, TurnSignals

from ..models import RollupState, TurnDayCount
from ..selectors.rates import signal_names

SLACK = timedelta(minutes=10)
BATCH_DAYS = 31  # days recomputed per grouped query


def _day_ranges(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days as contiguous (first, last) ranges, at most BATCH_DAYS long."""
    out: list[list[date]] = []
    for d in sorted(days):
        if out and d == out[-1][1] + timedelta(days=1) and (d - out[-1][0]).days < BATCH_DAYS:
            out[-1][1] = d
        else:
            out.append([d, d])
    return [(a, b) for a, b in out]


def _midnight(d: date) -> datetime:
    return datetime.combine(d, datetime.min.time(), tzinfo=dt_timezone.utc)


def _aggregates() -> dict:
    out = {"n_turns": Count("id"), "n_detected": Count("signals"),
           "n_failure": Count("id", filter=Q(signals__failure_candidate=True))}
    for name in signal_names():
        out[f"flag_{name}"] = Count("id", filter=Q(**{f"signals__{name}": True}))
    out["fp_sum"] = Sum("signals__failure_probability")
    out["fp_n"] = Count("signals__failure_probability")
    return out


def _counts(turns) -> list[TurnDayCount]:
    rows = (turns.filter(timestamp__isnull=False)
            .annotate(day=TruncDate("timestamp", tzinfo=dt_timezone.utc), rel=KT("metadata__release"),
                      named=Case(When(metadata__has_key="release", then=Value(True)), default=Value(False),
                                 output_field=BooleanField()))
            .values("named", "rel", "model", "source_id", "day").annotate(**_aggregates()).order_by())
    out = []
    for r in rows:
        out.append(TurnDayCount(
            named=r["named"], key=(r["rel"] or "") if r["named"] else r["model"], source_id=r["source_id"],
            day=r["day"] if isinstance(r["day"], date) else date.fromisoformat(str(r["day"])[:10]),
            turns=r["n_turns"], detected=r["n_detected"], failure_candidate=r["n_failure"],
            flags={name: r[f"flag_{name}"] for name in signal_names()},
            failure_probability_sum=r.get("fp_sum") or 0.0, failure_probability_n=r.get("fp_n") or 0))
    return out


def _dirty_days(mark: datetime) -> tuple[set[date], datetime | None]:
    """Days of the turns whose signals were stamped after `mark`, and the newest stamp: one scan."""
    changed = (TurnSignals.objects.filter(detected_at__gt=mark, turn__timestamp__isnull=False)
               .annotate(day=TruncDate("turn__timestamp", tzinfo=dt_timezone.utc))
               .values("day").annotate(newest=Max("detected_at")).order_by())
    days, newest = set(), None
    for row in changed:
        d = row["day"]
        days.add(d if isinstance(d, date) else date.fromisoformat(str(d)[:10]))
        newest = row["newest"] if newest is None else max(newest, row["newest"])
    return days, newest


def _changes() -> int | None:
    """Rows inserted, updated or deleted in production_turnsignals so far (Postgres), else None."""
    if connection.vendor != "postgresql":
        return None
    table = TurnSignals._meta.db_table
    with connection.cursor() as c:
        c.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM ("
                  "SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables WHERE relid = %s::regclass "
                  "UNION ALL SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_xact_user_tables "
                  "WHERE relid = %s::regclass) c", [table, table])
        return int(c.fetchone()[0])


def turn_day_counts_refresh(*, full: bool = False) -> dict:
    """Bring TurnDayCount up to date (all days with full=True, or when it was never built).
    Returns {"days": recomputed, "full": bool}. Refreshes are serialised by a row lock."""
    started = timezone.now()
    with transaction.atomic():
        state = RollupState.objects.select_for_update().filter(pk=1).first()
        if state is None:
            RollupState.objects.get_or_create(pk=1)
            state = RollupState.objects.select_for_update().get(pk=1)
        changes = _changes()
        full = full or state.detected_mark is None
        if full:
            newest = TurnSignals.objects.aggregate(m=Max("detected_at"))["m"]
            TurnDayCount.objects.all().delete()
            rows = _counts(Turn.objects.production())
            TurnDayCount.objects.bulk_create(rows, batch_size=2000)
            days = len({r.day for r in rows})
        else:
            if changes is not None and changes == state.changes_seen:
                dirty, newest = set(), None  # nothing written since the last refresh
            else:
                dirty, newest = _dirty_days(state.detected_mark)
            for first, last in _day_ranges(list(dirty)):
                TurnDayCount.objects.filter(day__gte=first, day__lte=last).delete()
                TurnDayCount.objects.bulk_create(
                    _counts(Turn.objects.production().filter(timestamp__gte=_midnight(first),
                                                timestamp__lt=_midnight(last + timedelta(days=1)))),
                    batch_size=2000)
            days = len(dirty)
        if full or newest is not None:
            state.detected_mark = min(newest or started, started - SLACK)
        state.changes_seen = changes
        state.refreshed_at = timezone.now()
        state.days_recomputed = days
        state.save()
    return {"days": days, "full": full}
