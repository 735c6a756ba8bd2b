import django_filters

from core.pii import redact
from core.roles import RAW_TURNS, has

from . import selectors
from .models import Event, RejectedLine, Session, Turn


def _raw(filterset) -> bool:
    request = getattr(filterset, "request", None)
    return bool(request is not None and has(request.user, RAW_TURNS))


class TurnFilter(django_filters.FilterSet):
    """`session` takes what the caller sees: the raw id with production.view_raw_turns, otherwise the
    session's pseudonym (a raw id must not be testable by those who only see pseudonyms)."""

    source = django_filters.CharFilter(field_name="source__name")
    session = django_filters.CharFilter(method="filter_session")
    model = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")
    date = django_filters.DateFilter(field_name="timestamp", lookup_expr="date")

    class Meta:
        model = Turn
        fields = ["source", "session", "model", "since", "until", "date"]

    def filter_session(self, queryset, name, value):
        if _raw(self):
            return queryset.filter(session__external_id=value)
        return queryset.filter(session_id__in=selectors.session_ids_by_pseudonym(value))


class SessionFilter(django_filters.FilterSet):
    source = django_filters.CharFilter(field_name="source__name")

    class Meta:
        model = Session
        fields = ["source"]


class EventFilter(django_filters.FilterSet):
    """`turn_id` without production.view_raw_turns: only an id the caller can see, one the redactor
    leaves as it is; an id holding personal data (shown redacted) matches nothing."""

    source = django_filters.CharFilter(field_name="source__name")
    turn_id = django_filters.CharFilter(method="filter_turn_id")
    attached = django_filters.BooleanFilter(field_name="turn", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Event
        fields = ["source", "type", "turn_id", "attached"]

    def filter_turn_id(self, queryset, name, value):
        if not _raw(self) and redact(value) != value:
            return queryset.none()
        return queryset.filter(turn_external_id=value)


class RejectedLineFilter(django_filters.FilterSet):
    source = django_filters.CharFilter(field_name="source__name")

    class Meta:
        model = RejectedLine
        fields = ["source", "origin", "job"]
