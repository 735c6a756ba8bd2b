"""Production quality per release: failure-candidate rate and each signal's rate over the turns a
release served in a window of days, with Wilson intervals, crude and standardised to a reference
mix of sources.

Turns are counted per (release, source, day): for one release and explicit days, by a grouped
query over its turns in those days; for all releases at once (the correlation), from the
TurnDayCount rollup. Windows and mixes are then sums over those few rows. Rates are over the turns whose signals have
been detected (`detected`): a turn not yet analysed has no flags, and counting it as unflagged
would bias every rate down.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

from core import stats
from production.models import SIGNAL_NAMES, Source
from releases.models import Release
from releases.selectors import release_turns

FAILURE = "failure_candidate"


def signal_names() -> tuple[str, ...]:
    """The production signal flags (production owns the vocabulary; it grows, e.g. session_ended)."""
    return tuple(SIGNAL_NAMES)


def _aggregates() -> dict:
    out = {"turns": Count("id"), "detected": Count("signals"),
           FAILURE: Count("id", filter=Q(signals__failure_candidate=True))}
    for name in signal_names():
        out[name] = Count("id", filter=Q(**{f"signals__{name}": True}))
    out["failure_probability_sum"] = Sum("signals__failure_probability")
    out["failure_probability_n"] = Count("signals__failure_probability")
    return out


def _counted_fields() -> tuple[str, ...]:
    return ("turns", "detected", FAILURE, *signal_names(), "failure_probability_sum", "failure_probability_n")


def _day():
    return TruncDate("timestamp", tzinfo=dt_timezone.utc)


def _as_date(value) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value)[:10])


# --- counts ----------------------------------------------------------------------------------------

Counts = dict  # {(source_id, day): {field: n}}


def _release_counts_many(releases: list[Release]) -> dict[int, Counts]:
    """(source, day) counts for each release, from the TurnDayCount rollup (current as of its last
    refresh: evaluation.services.rollup): a turn names its release in metadata.release, else belongs
    to every release of its model (as releases.selectors.release_turn_filter says)."""
    from ..models import TurnDayCount

    by_name = {r.name: r.pk for r in releases}
    by_model: dict[str, list[int]] = defaultdict(list)
    for r in releases:
        by_model[r.model].append(r.pk)
    wanted = Q(named=True, key__in=list(by_name)) | Q(named=False, key__in=list(by_model))
    fields = _counted_fields()
    out: dict[int, Counts] = defaultdict(dict)
    for row in TurnDayCount.objects.filter(wanted).values(
            "named", "key", "source_id", "day", "turns", "detected", "failure_candidate", "flags",
            "failure_probability_sum", "failure_probability_n").iterator(chunk_size=5000):
        flat = {"turns": row["turns"], "detected": row["detected"], FAILURE: row["failure_candidate"],
                **{name: (row["flags"] or {}).get(name, 0) for name in signal_names()},
                "failure_probability_sum": row["failure_probability_sum"],
                "failure_probability_n": row["failure_probability_n"]}
        targets = [by_name[row["key"]]] if row["named"] else by_model.get(row["key"], [])
        for pk in targets:
            cell = out[pk].setdefault((row["source_id"], row["day"]), dict.fromkeys(fields, 0))
            for f in fields:
                cell[f] += flat[f] or 0
    return out


def rollup_state() -> dict:
    """When the counts production_rates_many and the correlation read were last brought up to date."""
    from ..models import RollupState

    state = RollupState.objects.filter(pk=1).first()
    return {"refreshed_at": state.refreshed_at if state else None,
            "detected_mark": state.detected_mark if state else None}


def _release_counts(release: Release, start: date | None, end: date | None) -> Counts:
    qs = release_turns(release).filter(timestamp__isnull=False)
    if start is not None:
        qs = qs.filter(timestamp__gte=datetime.combine(start, datetime.min.time(), tzinfo=dt_timezone.utc))
    if end is not None:
        qs = qs.filter(timestamp__lt=datetime.combine(end + timedelta(days=1), datetime.min.time(),
                                                      tzinfo=dt_timezone.utc))
    rows = qs.annotate(day=_day()).values("source_id", "day").annotate(**_aggregates()).order_by()
    fields = _counted_fields()
    return {(r["source_id"], _as_date(r["day"])): {f: r[f] or 0 for f in fields} for r in rows}


def first_day(counts: Counts) -> date | None:
    days = [d for (_, d), c in counts.items() if c["turns"]]
    return min(days) if days else None


def window_of(counts: Counts, *, window_days: int | None = None) -> tuple[date | None, date | None]:
    """Days 1..N of serving: from the first day (UTC) the release served a turn."""
    start = first_day(counts)
    if start is None:
        return None, None
    n = int(window_days or settings.CORRELATION_WINDOW_DAYS)
    return start, start + timedelta(days=n - 1)


def by_source(counts: Counts, start: date | None, end: date | None) -> dict[int, dict]:
    """Counts summed per source over the days start..end (inclusive)."""
    out: dict[int, dict] = {}
    for (source_id, day), c in counts.items():
        if start is not None and day < start or end is not None and day > end:
            continue
        cell = out.setdefault(source_id, dict.fromkeys(c, 0))
        for f, v in c.items():
            cell[f] += v
    return out


# --- rates ----------------------------------------------------------------------------------------

def _wilson(k: int, n: int) -> dict:
    """{rate, ci_low, ci_high, n, k} (k: the turns flagged, for comparing two releases with
    core.stats.diff_proportions), or {n, k, status: "insufficient_data"} when n is 0."""
    return {**stats.summary(stats.guarded(n, 1, stats.wilson, k, n), n), "k": k}


def _source_names(ids) -> dict[int, str]:
    return dict(Source.objects.filter(id__in=list(ids)).values_list("id", "name"))


def _standardised(per_source: dict[int, dict], names: dict[int, str], mix: dict[str, float]) -> dict:
    """Each rate at the reference mix of sources (core.stats.standardise_rate); a source of the mix
    that the release did not serve makes it undefined: "insufficient_data", with the reason."""
    id_of = {v: k for k, v in names.items()}
    n_by = {s: per_source.get(id_of.get(s), {}).get("detected", 0) for s in mix}
    missing = sorted(s for s, share in mix.items() if share > 0 and not n_by[s])
    out = {"reference_mix": dict(mix)}
    for flag in (FAILURE, *signal_names()):
        if missing:
            out[flag] = {"status": stats.INSUFFICIENT_DATA, "reason": f"no turns of source(s) {', '.join(missing)}"}
            continue
        rates = {s: per_source[id_of[s]][flag] / n_by[s] for s in mix if n_by[s]}
        est = stats.guarded(sum(n_by.values()), 1, stats.standardise_rate, rates, n_by,
                            {s: m for s, m in mix.items() if m > 0})
        out[flag] = stats.summary(est, sum(n_by.values()))
    return out


def rates_from_counts(release: Release, counts: Counts, start: date | None, end: date | None,
                      reference_mix: dict[str, float] | None = None) -> dict:
    per_source = by_source(counts, start, end)
    names = _source_names(per_source)
    total = {f: sum(c[f] for c in per_source.values()) for f in _counted_fields()}
    n = total["detected"]
    out = {
        "release": release.name,
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "turns": total["turns"],
        "detected": n,
        FAILURE: _wilson(total[FAILURE], n),
        "signals": {name: _wilson(total[name], n) for name in signal_names()},
        "by_source": {names.get(sid, str(sid)): {"turns": c["turns"], "detected": c["detected"],
                                                 FAILURE: c[FAILURE]} for sid, c in sorted(per_source.items())},
        "standardised": _standardised(per_source, names, reference_mix) if reference_mix else None,
    }
    k = total["failure_probability_n"]
    out["failure_probability"] = {"mean": total["failure_probability_sum"] / k if k else None, "n": k}
    return out


def production_rates(release: Release, *, start: date | str | None = None, end: date | str | None = None,
                     window_days: int | None = None, reference_mix: dict[str, float] | None = None) -> dict:
    """Rates over the turns `release` served from `start` to `end` (dates, UTC, inclusive).

    Without dates: days 1..CORRELATION_WINDOW_DAYS of its serving (the post-release window, the same
    for every release). With dates: exactly those days — the A/B comparison of the gate asks for a
    candidate and a baseline over the same days. `reference_mix` ({source name: share}) adds the
    rates standardised to that mix. Every rate is {rate, ci_low, ci_high, n} or
    {n, status: "insufficient_data"}.
    """
    start, end = _as_date(start), _as_date(end)
    if start is None and end is None:
        counts = _release_counts(release, None, None)
        start, end = window_of(counts, window_days=window_days)
    else:
        counts = _release_counts(release, start, end)
    return rates_from_counts(release, counts, start, end, reference_mix)


def production_rates_many(releases: list[Release], *, window_days: int | None = None,
                          reference_mix: dict[str, float] | str | None = None) -> dict[str, dict]:
    """production_rates for several releases, each over its own post-release window, from the
    TurnDayCount rollup (refresh it first: evaluation.services.rollup.turn_day_counts_refresh).

    reference_mix "common" (the correlation report's choice): the pooled source mix over the
    sources every release served in its window, so each release's rate is read at the same mix.
    """
    counts = _release_counts_many(releases)
    windows = {r.pk: window_of(counts.get(r.pk, {}), window_days=window_days) for r in releases}
    mix = reference_mix
    if mix == "common":
        mix = common_mix([(counts.get(r.pk, {}),) + windows[r.pk] for r in releases])
    return {r.name: rates_from_counts(r, counts.get(r.pk, {}), *windows[r.pk], reference_mix=mix or None)
            for r in releases}


def common_mix(windows: list[tuple[Counts, date | None, date | None]]) -> dict[str, float] | None:
    """Pooled shares of the sources that every release (with turns) served in its window; None when
    no source is common to all (then no standardised rate can compare them)."""
    per = [by_source(c, s, e) for c, s, e in windows if s is not None]
    per = [p for p in per if any(v["detected"] for v in p.values())]
    if not per:
        return None
    common = set.intersection(*({sid for sid, v in p.items() if v["detected"]} for p in per))
    if not common:
        return None
    pooled = {sid: sum(p[sid]["detected"] for p in per) for sid in common}
    total = sum(pooled.values())
    names = _source_names(common)
    return {names[sid]: pooled[sid] / total for sid in sorted(common, key=lambda s: names[s])}


def production_units(release: Release, *, start: date | str, end: date | str) -> dict:
    """The turns `release` served from `start` to `end` (UTC days, inclusive) whose signals are
    detected, summed per unit of randomisation: the user when the turn logs a user_id, else its
    session. Turns of one user or session are correlated; an interval that treats them as
    independent is too narrow, and the sample-ratio check counts units, not turns.

    `{"unit": "user" | "session" | "user or session", "units": N, "turns": [n per unit],
    FAILURE: [k per unit], <signal>: [k per unit], ...}` (lists in one order of units)."""
    start, end = _as_date(start), _as_date(end)
    qs = (release_turns(release).filter(
        signals__isnull=False,
        timestamp__gte=datetime.combine(start, datetime.min.time(), tzinfo=dt_timezone.utc),
        timestamp__lt=datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=dt_timezone.utc)))
    flags = {FAILURE: Count("id", filter=Q(signals__failure_candidate=True)),
             **{name: Count("id", filter=Q(**{f"signals__{name}": True})) for name in signal_names()}}
    rows = list(qs.values("user_id", "session_id").annotate(turns=Count("id"), **flags).order_by())
    units: dict[tuple, dict] = {}
    for r in rows:  # a user's sessions are one unit
        key = ("user", r["user_id"]) if r["user_id"] else ("session", r["session_id"])
        cell = units.setdefault(key, dict.fromkeys(("turns", *flags), 0))
        for f in cell:
            cell[f] += r[f]
    kinds = {k for k, _ in units}
    out = {"unit": "user or session" if len(kinds) > 1 else (kinds.pop() if kinds else "session"),
           "units": len(units), "turns": [c["turns"] for c in units.values()]}
    for f in flags:
        out[f] = [c[f] for c in units.values()]
    return out
