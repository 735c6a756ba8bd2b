"""Reads over production data, for the API, the admin, the dashboard and other apps."""
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from .models import Event, IngestJob, MirroredAnswer, RejectedLine, Session, Source, Turn, TurnSignals
from .signal_definitions import DEFINITION_VERSION, SIGNAL_LABELS, SIGNAL_NAMES  # noqa: F401 (read by other apps)


def turn_list() -> QuerySet[Turn]:
    return Turn.objects.production().select_related("source", "session").order_by("id")


def session_list() -> QuerySet[Session]:
    """Sessions of production turns (a review case is a session of its own: left out)."""
    return (Session.objects.filter(Exists(Turn.objects.production().filter(session=OuterRef("pk"))))
            .select_related("source").annotate(turn_count=Count("turns")).order_by("id"))


def session_ids_by_pseudonym(value: str) -> list[int]:
    """Sessions whose pseudonym (what users without production.view_raw_turns see, the same as
    Label Studio shows) is `value`. A keyed pseudonym cannot be reversed, so each session's is
    computed: one HMAC per session, read in chunks. A raw id matches nothing."""
    from django.conf import settings

    from core.pii import pseudonym

    if not value.startswith("session-"):
        return []
    key = settings.PII_PSEUDONYM_KEY.encode()
    rows = Session.objects.values_list("id", "source__name", "external_id").order_by("id").iterator(chunk_size=5000)
    return [pk for pk, source, ext in rows if pseudonym(f"{source}\x1f{ext}", key=key, kind="session") == value]


def event_list() -> QuerySet[Event]:
    """Events, but none on a generated turn (those that arrived before their turn are kept)."""
    return Event.objects.exclude(turn__kind=Turn.Kind.GENERATED).select_related("source", "turn").order_by("id")


def ingest_jobs_visible_to(user) -> QuerySet[IngestJob]:
    """All ingest jobs for a user allowed to see them all; otherwise only the user's own."""
    qs = IngestJob.objects.select_related("source").order_by("-id")
    return qs if user.has_perm("production.view_ingestjob") else qs.filter(created_by=user)


def rejected_line_list() -> QuerySet[RejectedLine]:
    return RejectedLine.objects.select_related("source").order_by("id")


def mirrored_answers(since_id: int = 0) -> QuerySet[MirroredAnswer]:
    """Mirrored candidate answers (shadow lines) after `since_id`, oldest first, with their turn when it
    has arrived (`turn` is null until then). The shadow app reads new ones by the last id it saw."""
    return MirroredAnswer.objects.filter(id__gt=since_id).select_related("source", "turn").order_by("id")


def holdings_report() -> dict:
    """What evalgap holds: the numbers `make demo` prints."""
    return {
        "turns": Turn.objects.production().count(),
        "sessions": Session.objects.count(),
        "sources": list(
            Source.objects.annotate(turn_count=Count("turns", filter=Q(turns__kind=Turn.Kind.PRODUCTION)))
            .order_by("name").values("name", "turn_count")
        ),
        "models": list(Turn.objects.production().values("model").annotate(turns=Count("id")).order_by("-turns", "model")),
        "events_by_type": dict(Event.objects.values_list("type").annotate(n=Count("id")).order_by("type")),
        "events_unattached": Event.objects.filter(turn__isnull=True).count(),
        "rejected": RejectedLine.objects.count(),
        "rejected_sample": list(RejectedLine.objects.order_by("id").values("origin", "line_no", "reason")[:5]),
    }


def _signals_record(turn: Turn) -> dict:
    sig = getattr(turn, "signals", None)
    flags = sig.flags() if sig else dict.fromkeys(SIGNAL_NAMES, False)
    return {**flags, "failure_candidate": bool(sig and sig.failure_candidate),
            "failure_probability": sig.failure_probability if sig else 0.0,
            "definition_version": sig.definition_version if sig else None, "evidence": sig.evidence if sig else {}}


def turns_with_signals_export(*, source: str | None = None):
    """Every turn with its signals, streamed in id order (flat memory on large logs)."""
    qs = Turn.objects.production().select_related("source", "session", "signals").order_by("id")
    if source:
        qs = qs.filter(source__name=source)
    for t in qs.iterator(chunk_size=2000):
        yield {
            "id": t.external_id, "source": t.source.name, "session_id": t.session.external_id,
            "timestamp": t.timestamp.isoformat() if t.timestamp else None, "query": t.query, "response": t.response,
            "model": t.model, "signals": _signals_record(t),
            "corrected_response": t.signals.corrected_response if hasattr(t, "signals") else "",
        }


def failure_candidates() -> QuerySet[Turn]:
    """Strongest first: by the probability that the answer failed, then newest."""
    return (Turn.objects.production().filter(signals__failure_candidate=True)
            .select_related("source", "session", "signals")
            .order_by("-signals__failure_probability", "-timestamp", "id"))


RATE_SIGNALS = SIGNAL_NAMES


def _no_reaction(counts: dict) -> int:
    # abandoned + session_ended: what definition version 1 counted as "abandoned" (comparable across versions)
    return counts["abandoned"] + counts["session_ended"]


def signal_rates_daily(*, by_model: bool = True, source: str | None = None) -> list[dict]:
    """Per day (and per model) share of answered turns with each signal."""
    from django.db.models.functions import TruncDate

    qs = TurnSignals.objects.filter(turn__timestamp__isnull=False)
    if source:
        qs = qs.filter(turn__source__name=source)
    keys = ["day", "turn__model"] if by_model else ["day"]
    aggregates = {name: Count("turn_id", filter=Q(**{name: True})) for name in RATE_SIGNALS}
    aggregates["failures"] = Count("turn_id", filter=Q(failure_candidate=True))
    rows = (qs.annotate(day=TruncDate("turn__timestamp")).values(*keys)
            .annotate(turns=Count("turn_id"), **aggregates).order_by(*keys))
    out = []
    for r in rows:
        n = r["turns"]
        item = {"date": r["day"].isoformat(), "turns": n}
        if by_model:
            item["model"] = r["turn__model"]
        r["no_reaction"] = _no_reaction(r)
        for name in (*RATE_SIGNALS, "no_reaction", "failures"):
            item[f"{name}_rate"] = round(r[name] / n, 4) if n else 0.0
        out.append(item)
    return out


def signal_rates_overall() -> dict:
    """Share of turns with each signal, with n; ``versions`` counts rows per definition version
    (rows of an older version mean `detect_signals --full` has not run since it changed)."""
    qs = TurnSignals.objects.all()
    agg = qs.aggregate(n=Count("turn_id"), **{name: Count("turn_id", filter=Q(**{name: True}))
                                              for name in (*RATE_SIGNALS, "failure_candidate")})
    n = agg.pop("n")
    agg["no_reaction"] = _no_reaction(agg)
    versions = dict(qs.values_list("definition_version").annotate(c=Count("turn_id")).order_by("definition_version"))
    return {"turns": n, "definition_version": DEFINITION_VERSION, "versions": versions,
            **{f"{k}_rate": round(v / n, 4) if n else 0.0 for k, v in agg.items()}}


def signal_rates_by_model() -> list[dict]:
    rows = (TurnSignals.objects.values("turn__model")
            .annotate(turns=Count("turn_id"), **{n: Count("turn_id", filter=Q(**{n: True})) for n in RATE_SIGNALS})
            .order_by("-turns"))
    return [{"model": r["turn__model"], "turns": r["turns"],
             **{f"{n}_rate": r[n] / r["turns"] for n in RATE_SIGNALS}} for r in rows]


def top_rephrased_failures(*, limit: int = 5) -> list[Turn]:
    """The clearest re-asks: rephrased failure candidates, strongest failure probability first."""
    return list(failure_candidates().filter(signals__rephrased=True)[:limit])
