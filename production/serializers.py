from rest_framework import serializers

from core.roles import RedactedFieldsMixin

from .models import Event, IngestJob, RejectedLine, Session, Turn
from .signal_definitions import SIGNAL_NAMES


class TurnSerializer(RedactedFieldsMixin, serializers.ModelSerializer):
    # Without production.view_raw_turns, text is redacted and the user and session ids are
    # pseudonyms (those Label Studio shows; `?session=` takes them). The turn id passes the
    # redactor: an id that is an e-mail address or a phone number is PII.
    redacted_fields = ("query", "response", "contexts", "metadata", "turn_id")
    pseudonymised_fields = {"user_id": "user", "session_id": "session"}
    source = serializers.CharField(source="source.name")
    session_id = serializers.CharField(source="session.external_id")
    turn_id = serializers.CharField(source="external_id")

    class Meta:
        model = Turn
        fields = ["id", "turn_id", "source", "session_id", "timestamp", "position", "query", "response", "user_id",
                  "contexts", "model", "response_timestamp", "latency_ms", "metadata"]


class SessionSerializer(RedactedFieldsMixin, serializers.ModelSerializer):
    pseudonymised_fields = {"session_id": "session"}
    source = serializers.CharField(source="source.name")
    session_id = serializers.CharField(source="external_id")
    turn_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Session
        fields = ["id", "session_id", "source", "first_seen", "last_seen", "turn_count"]


class EventSerializer(RedactedFieldsMixin, serializers.ModelSerializer):
    redacted_fields = ("turn_external_id", "corrected_response", "actor", "reason", "payload")
    source = serializers.CharField(source="source.name")
    attached = serializers.SerializerMethodField()

    class Meta:
        model = Event
        fields = ["id", "source", "turn_external_id", "turn", "attached", "type", "timestamp", "corrected_response",
                  "actor", "reason", "payload"]

    def get_attached(self, obj) -> bool:
        return obj.turn_id is not None


class RejectedLineSerializer(serializers.ModelSerializer):
    source = serializers.CharField(source="source.name")

    class Meta:
        model = RejectedLine
        fields = ["id", "source", "origin", "line_no", "reason", "raw", "job", "created_at"]


class IngestJobSerializer(serializers.ModelSerializer):
    source = serializers.CharField(source="source.name")

    class Meta:
        model = IngestJob
        fields = ["id", "source", "origin", "status", "read", "created", "duplicates", "rejected", "events", "shadow",
                  "error", "created_at", "finished_at"]


class IngestSummarySerializer(serializers.Serializer):
    read = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    events = serializers.IntegerField()
    shadow = serializers.IntegerField()


class FailureSerializer(TurnSerializer):
    redacted_fields = (*TurnSerializer.redacted_fields, "evidence", "corrected_response")

    signals = serializers.SerializerMethodField()
    evidence = serializers.JSONField(source="signals.evidence")
    corrected_response = serializers.CharField(source="signals.corrected_response")
    failure_probability = serializers.FloatField(source="signals.failure_probability")
    definition_version = serializers.IntegerField(source="signals.definition_version")

    class Meta(TurnSerializer.Meta):
        fields = TurnSerializer.Meta.fields + ["failure_probability", "signals", "evidence", "corrected_response",
                                               "definition_version"]

    def get_signals(self, obj) -> dict:
        return {name: getattr(obj.signals, name) for name in SIGNAL_NAMES}
