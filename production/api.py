import base64
import binascii
from collections import defaultdict

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers as drf, status, viewsets
from rest_framework.authentication import SessionAuthentication, TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import ALL_INGEST_JOBS, DASHBOARDS, ERASE_SUBJECT, INGEST, REJECTED_LINES, TURNS, Allow

from . import filters, selectors, serializers
from .models import IngestJob
from .services import ingest, privacy, traces
from .traces import otlp
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


class IngestTokenAuthentication(TokenAuthentication):
    """An ingest token as OTLP exporters send it: `Token KEY` (DRF's), `Bearer KEY` (the usual OTLP header),
    or HTTP Basic with the token as the password (what the Langfuse SDK sends: secret_key = the token)."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts:
            return None
        scheme = parts[0].lower()
        if scheme not in (b"token", b"bearer", b"basic"):
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Authorization: expected '<scheme> KEY' with one key and no spaces")
        try:
            key = parts[1].decode()
            if scheme == b"basic":
                key = base64.b64decode(key, validate=True).decode().partition(":")[2]
        except (UnicodeError, binascii.Error):
            raise AuthenticationFailed("Authorization: the key is not readable") from None
        return self.authenticate_credentials(key)

    def authenticate_header(self, request):
        return "Bearer"


class IngestTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema names the OTLP receiver's token (DRF's own TokenAuthentication is
    already "tokenAuth"; two classes under one name make an ambiguous schema)."""

    target_class = IngestTokenAuthentication
    name = "ingestToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "an ingest token: `Bearer KEY`, `Token KEY`, or HTTP Basic with the token as password"}


class OtlpTracesApi(APIView):
    """OTLP/HTTP traces (protobuf or JSON, gzip or not). Each resource's spans go to the source its
    `service.name` names, or all to `?source=` (or X-Evalgap-Source) when given."""

    authentication_classes = [IngestTokenAuthentication, SessionAuthentication]
    parser_classes = [RawBodyParser]
    permission_classes = [Allow(POST=INGEST)]

    @extend_schema(
        parameters=[OpenApiParameter("source", str, description="source name (default: each resource's "
                                                                 "service.name)")],
        request={"application/x-protobuf": bytes, "application/json": bytes},
        responses={200: dict},
        description="An OTLP ExportTraceServiceRequest; each trace becomes one turn (docs/ingest-otlp.md). "
                    "Spans that cannot be mapped are rejected lines and counted in partialSuccess.",
    )
    def post(self, request):
        try:
            as_json = otlp.is_json(request.content_type)
            data = otlp.decompress(request.body, request.headers.get("Content-Encoding", ""),
                                   settings.OTLP_MAX_BODY_BYTES)
            spans = otlp.read_request(data, as_json)
        except otlp.OtlpBodyTooLarge as e:
            return Response({"body": str(e)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        except otlp.OtlpBodyError as e:
            raise ValidationError({"body": str(e)}) from None
        override = request.query_params.get("source") or request.headers.get("X-Evalgap-Source", "")
        by_source: dict[str, list] = defaultdict(list)
        for span in spans:
            by_source[override.strip() or span.service].append(span)
        if "" in by_source:
            raise ValidationError({"source": f"{len(by_source[''])} spans have no service.name: set the "
                                             "resource's service.name (OTEL_SERVICE_NAME) or pass ?source=NAME"})
        summary, rejected, reasons = {}, 0, []
        for name, group in by_source.items():
            try:
                source = ingest.source_get_or_create(name=name)
            except ingest.IngestError as e:
                raise ValidationError({"source": str(e)}) from None
            result = traces.trace_spans_ingest(source=source, spans=group, origin="otlp")
            signals_detect_after_ingest(ingest.IngestResult(created=result.created + result.updated,
                                                            events=result.events))
            summary[name] = result.as_dict()
            rejected += result.rejected
            reasons += [s.error for s in group if s.error][:3]
        message = f"{rejected} rejected (GET /api/rejects/?origin=otlp): " + "; ".join(reasons) if rejected else ""
        body = otlp.response_body(rejected, message, as_json, summary)
        return HttpResponse(body, content_type="application/json" if as_json else "application/x-protobuf")


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
