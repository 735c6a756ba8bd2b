"""Reads over production data, for the API, the admin, the dashboard and other apps."""
from django.db.models import Count, QuerySet

from .models import Event, RejectedLine, Session, Source, Turn


def turn_list() -> QuerySet[Turn]:
    return Turn.objects.select_related("source", "session").order_by("id")


def session_list() -> QuerySet[Session]:
    return Session.objects.select_related("source").annotate(turn_count=Count("turns")).order_by("id")


def event_list() -> QuerySet[Event]:
    return Event.objects.select_related("source", "turn").order_by("id")


def rejected_line_list() -> QuerySet[RejectedLine]:
    return RejectedLine.objects.select_related("source").order_by("id")


def holdings_report() -> dict:
    """What evalgap holds: the numbers `make demo` prints."""
    return {
        "turns": Turn.objects.count(),
        "sessions": Session.objects.count(),
        "sources": list(
            Source.objects.annotate(turn_count=Count("turns")).order_by("name").values("name", "turn_count")
        ),
        "models": list(Turn.objects.values("model").annotate(turns=Count("id")).order_by("-turns", "model")),
        "events_by_type": dict(Event.objects.values_list("type").annotate(n=Count("id")).order_by("type")),
        "events_unattached": Event.objects.filter(turn__isnull=True).count(),
        "rejected": RejectedLine.objects.count(),
        "rejected_sample": list(RejectedLine.objects.order_by("id").values("origin", "line_no", "reason")[:5]),
    }
