import django_filters

from .models import Event, RejectedLine, Session, Turn


class TurnFilter(django_filters.FilterSet):
    source = django_filters.CharFilter(field_name="source__name")
    session = django_filters.CharFilter(field_name="session__external_id")
    model = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")
    date = django_filters.DateFilter(field_name="timestamp", lookup_expr="date")

    class Meta:
        model = Turn
        fields = ["source", "session", "model", "since", "until", "date"]


class SessionFilter(django_filters.FilterSet):
    source = django_filters.CharFilter(field_name="source__name")

    class Meta:
        model = Session
        fields = ["source"]


class EventFilter(django_filters.FilterSet):
    source = django_filters.CharFilter(field_name="source__name")
    turn_id = django_filters.CharFilter(field_name="turn_external_id")
    attached = django_filters.BooleanFilter(field_name="turn", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Event
        fields = ["source", "type", "turn_id", "attached"]


class RejectedLineFilter(django_filters.FilterSet):
    source = django_filters.CharFilter(field_name="source__name")

    class Meta:
        model = RejectedLine
        fields = ["source", "origin", "job"]
