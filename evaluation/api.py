"""Thin API views: validate, call one selector or service, render. Everyone signed in reads;
starting a run is for signed-in users too until core/roles.py lands (then: admin)."""
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from llm.client import LLMNotConfigured
from releases.selectors import release_get

from . import selectors
from .models import OfflineRun
from .services import offline
from .services.rollup import turn_day_counts_refresh


def run_json(run: OfflineRun) -> dict:
    return {**offline.run_summary(run), "id": run.pk, "mode": run.mode, "format": run.format, "metric": run.metric,
            "status": run.status, "error": run.error, "failed": run.failed, "skipped": run.skipped,
            "unknown_keys": len(run.unknown_keys), "missing": run.missing, "cost_usd": str(run.cost_usd),
            "llm_requests": run.llm_requests, "created_at": run.created_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None}


class CorrelationReportView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=OpenApiTypes.OBJECT, description="The correlation report (issue #10's JSON).",
                   parameters=[OpenApiParameter("last", int, description="releases (default CORRELATION_LAST_K)")])
    def get(self, request):
        try:
            last = int(request.query_params["last"]) if "last" in request.query_params else None
        except ValueError:
            return Response({"last": "an integer"}, status=status.HTTP_400_BAD_REQUEST)
        turn_day_counts_refresh()
        return Response(selectors.correlation_report(last=last))


class SignalValidityView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(selectors.signal_validity())


class ProductionRatesView(APIView):
    """GET /api/evaluation/releases/<name>/production-rates/?start=YYYY-MM-DD&end=YYYY-MM-DD"""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=OpenApiTypes.OBJECT, parameters=[
        OpenApiParameter("start", OpenApiTypes.DATE, description="first day (UTC); default: day 1 of serving"),
        OpenApiParameter("end", OpenApiTypes.DATE, description="last day (UTC), inclusive")])
    def get(self, request, name: str):
        release = release_get(name=name)
        if release is None:
            return Response({"detail": f"no release named {name!r}"}, status=status.HTTP_404_NOT_FOUND)
        try:
            return Response(selectors.production_rates(release, start=request.query_params.get("start") or None,
                                                       end=request.query_params.get("end") or None))
        except ValueError as e:
            return Response({"detail": f"start/end: dates as YYYY-MM-DD ({e})"}, status=status.HTTP_400_BAD_REQUEST)


class OfflineRunCreate(serializers.Serializer):
    release = serializers.CharField()
    testset = serializers.CharField()
    version = serializers.IntegerField(min_value=1)
    mode = serializers.ChoiceField(choices=[OfflineRun.Mode.GENERATE, OfflineRun.Mode.SERVED],
                                   default=OfflineRun.Mode.GENERATE)
    max_usd = serializers.FloatField(required=False, min_value=0)


class OfflineRunListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=OpenApiTypes.OBJECT, parameters=[OpenApiParameter("release", str)])
    def get(self, request):
        runs = selectors.offline_run_list(release=request.query_params.get("release") or None)[:200]
        return Response([run_json(r) for r in runs])

    @extend_schema(request=OfflineRunCreate, responses={202: OpenApiTypes.OBJECT})
    def post(self, request):
        """Start a run (generate or served) on the worker: 202 with the run; poll its URL."""
        s = OfflineRunCreate(data=request.data)
        s.is_valid(raise_exception=True)
        try:
            run = offline.offline_run_create(**s.validated_data, user=request.user.get_username())
        except offline.OfflineError as e:
            return Response({"detail": str(e)}, status=status.HTTP_400_BAD_REQUEST)
        except LLMNotConfigured as e:
            return Response({"detail": str(e)}, status=status.HTTP_409_CONFLICT)
        from .tasks import offline_run_execute

        transaction.on_commit(lambda: offline_run_execute.delay(run.pk))
        return Response(run_json(run), status=status.HTTP_202_ACCEPTED)


class OfflineRunDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, run_id: int):
        run = selectors.offline_run_get(run_id=run_id)
        if run is None:
            return Response({"detail": "not found"}, status=status.HTTP_404_NOT_FOUND)
        return Response({**run_json(run), "unknown_keys": run.unknown_keys,
                         "scores": list(selectors.offline_scores_of(run).values("key", "score", "verdict", "error"))})


class AlarmListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response([{"id": a.pk, "kind": a.kind, "release": a.release.name if a.release else None,
                          "detail": a.detail, "evidence": a.evidence, "raised_at": a.raised_at.isoformat(),
                          "posted_at": a.posted_at.isoformat() if a.posted_at else None,
                          "post_attempts": a.post_attempts, "post_error": a.post_error}
                         for a in selectors.alarm_list(limit=500)])
