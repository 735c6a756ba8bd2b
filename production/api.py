from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers as drf, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import ALL_INGEST_JOBS, DASHBOARDS, ERASE_SUBJECT, INGEST, REJECTED_LINES, TURNS, Allow

from . import filters, selectors, serializers
from .models import IngestJob
from .services import ingest, privacy
from .tasks import ingest_job_run, signals_detect_after_ingest


class RawBodyParser(BaseParser):
    """Hands the body over untouched: ingest parses it line by line itself."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read()


class IngestApi(APIView):
    parser_classes = [RawBodyParser]
    permission_classes = [Allow(POST=INGEST)]

    @extend_schema(
        parameters=[OpenApiParameter("source", str, required=True, description="source name")],
        request={"application/x-ndjson": bytes, "application/json": bytes},
        responses={200: serializers.IngestSummarySerializer, 202: serializers.IngestJobSerializer},
        description="JSON lines or a JSON array of records (the production-log contract). Bodies larger "
                    "than INGEST_SYNC_MAX_BYTES are ingested by a worker: 202 and a job to poll.",
    )
    def post(self, request):
        source_name = request.query_params.get("source") or request.headers.get("X-Evalgap-Source", "")
        if not source_name.strip():
            raise ValidationError({"source": "pass ?source=NAME (or the X-Evalgap-Source header)"})
        body = request.body
        if not body.strip():
            raise ValidationError({"body": "empty body: send JSON lines or a JSON array"})
        try:
            source = ingest.source_get_or_create(name=source_name)
        except ingest.IngestError as e:
            raise ValidationError({"source": str(e)}) from None
        if len(body) > settings.INGEST_SYNC_MAX_BYTES:
            job = ingest.ingest_job_spool(source=source, body=body, user=request.user)
            # Robust: with the broker down the job is still accepted; the sweeper sends it later.
            transaction.on_commit(lambda: ingest_job_run.delay(job.pk), robust=True)
            return Response(serializers.IngestJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
        result = ingest.turns_ingest_body(source=source, body=body)
        signals_detect_after_ingest(result)
        return Response(result.as_dict(), status=status.HTTP_200_OK)


class IngestJobViewSet(viewsets.ReadOnlyModelViewSet):
    """Every job for those who may see all; an ingest service its own only."""

    serializer_class = serializers.IngestJobSerializer
    permission_classes = [Allow(GET=(ALL_INGEST_JOBS, INGEST))]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return IngestJob.objects.none()
        return selectors.ingest_jobs_visible_to(self.request.user)


class TurnViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [Allow(GET=TURNS)]
    queryset = selectors.turn_list()
    serializer_class = serializers.TurnSerializer
    filterset_class = filters.TurnFilter


class SessionViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [Allow(GET=TURNS)]
    queryset = selectors.session_list()
    serializer_class = serializers.SessionSerializer
    filterset_class = filters.SessionFilter


class EventViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [Allow(GET=TURNS)]
    queryset = selectors.event_list()
    serializer_class = serializers.EventSerializer
    filterset_class = filters.EventFilter


class RejectedLineViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [Allow(GET=REJECTED_LINES)]
    queryset = selectors.rejected_line_list()
    serializer_class = serializers.RejectedLineSerializer
    filterset_class = filters.RejectedLineFilter


class FailureViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [Allow(GET=TURNS)]
    """Turns whose answer failed by what users or agents did (rephrase, override, and by setting
    thumbs-down and escalation), each with its evidence; strongest first (failure_probability)."""

    queryset = selectors.failure_candidates()
    serializer_class = serializers.FailureSerializer
    filterset_class = filters.TurnFilter


class SignalRatesDailyApi(APIView):
    permission_classes = [Allow(GET=DASHBOARDS)]

    @extend_schema(parameters=[OpenApiParameter("by_model", bool), OpenApiParameter("source", str)],
                   responses={200: dict})
    def get(self, request):
        by_model = request.query_params.get("by_model", "true").lower() not in ("0", "false", "no")
        return Response(selectors.signal_rates_daily(by_model=by_model, source=request.query_params.get("source")))


class EraseSubjectRequest(drf.Serializer):
    user_id = drf.CharField(max_length=500, help_text="the production user id, as the log sent it")


class EraseSubjectApi(APIView):
    """Erase a production user (issue #19): the same service as `manage.py erase_subject`. Admins only."""

    permission_classes = [Allow(POST=ERASE_SUBJECT)]

    @extend_schema(request=EraseSubjectRequest, responses={200: dict})
    def post(self, request):
        params = EraseSubjectRequest(data=request.data)
        params.is_valid(raise_exception=True)
        return Response(privacy.subject_erase(user_id=params.validated_data["user_id"], actor=request.user))
