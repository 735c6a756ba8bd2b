"""The shadow API: reports, pairs with their verdicts, runs; start a replay or a judge pass.
Everyone signed in reads; starting paid work is the same permission for now (IsAuthenticated:
core/roles.py replaces it when it lands)."""

from django.db import transaction
from django.http import Http404
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from llm.client import LLMNotConfigured

from . import selectors
from .models import JudgeCalibration, JudgeRun, ShadowPair, ShadowRun, ShadowVerdict
from .services import judge, replay
from .services.judging import PromptMissing


def _int(request, name: str, default: int, low: int = 1, high: int = 366) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: "expected a whole number"}) from None
    if not low <= value <= high:
        raise ValidationError({name: f"expected {low} to {high}"})
    return value


class ReportApi(APIView):
    """GET /api/shadow/releases/<name>/report/?days=7: the shadow report (the command's keys and the
    numbers behind them)."""

    permission_classes = [IsAuthenticated]

    def get(self, request, name: str):
        try:
            return Response(selectors.shadow_report(name, _int(request, "days", 0, 0) or None))
        except ValueError as e:
            raise Http404(str(e)) from None


class DailyApi(APIView):
    """GET /api/shadow/releases/<name>/daily/?days=30: win rate per day with its interval."""

    permission_classes = [IsAuthenticated]

    def get(self, request, name: str):
        if selectors._release(name) is None:
            raise Http404(f"no release named {name!r}")
        return Response(selectors.shadow_daily(name, _int(request, "days", 30)))


class VerdictSerializer(serializers.ModelSerializer):
    class Meta:
        model = ShadowVerdict
        fields = ["order", "judge_model", "prompt_version", "verdict", "winner", "rationale", "failure_modes_a",
                  "failure_modes_b", "dropped_codes", "attempts", "error", "raw_answer", "cost_usd", "created_at"]


class PairSerializer(serializers.ModelSerializer):
    release = serializers.CharField(source="release.name")
    turn_id = serializers.CharField(source="turn.external_id")
    source = serializers.CharField(source="turn.source.name")
    query = serializers.CharField(source="turn.query")
    served_answer = serializers.CharField(source="turn.response")
    verdicts = VerdictSerializer(many=True)

    class Meta:
        model = ShadowPair
        fields = ["id", "release", "origin", "source", "turn_id", "day", "query", "served_answer", "candidate_answer",
                  "latency_ms", "prompt_tokens", "completion_tokens", "cost_usd", "error", "outcome",
                  "outcome_reason", "candidate_failure_modes", "served_failure_modes", "verdicts"]


class PairViewSet(viewsets.ReadOnlyModelViewSet):
    """GET /api/shadow/pairs/?release=NAME&outcome=candidate_win|served_win|tie|inconsistent|unjudged"""

    serializer_class = PairSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        qs = ShadowPair.objects.select_related("release", "turn__source").prefetch_related("verdicts").order_by("id")
        release = self.request.query_params.get("release")
        if release:
            qs = qs.filter(release__name=release)
        outcome = self.request.query_params.get("outcome")
        if outcome is not None:
            qs = qs.filter(outcome=outcome)
        return qs


class RunSerializer(serializers.ModelSerializer):
    release = serializers.CharField(source="release.name")

    class Meta:
        model = ShadowRun
        fields = ["id", "release", "day", "sample_size", "status", "sampled", "answered", "failed", "not_sent",
                  "cost_usd", "budget_usd", "budget_stopped", "budget_reason", "error", "created_at", "finished_at"]


class RunStartSerializer(serializers.Serializer):
    release = serializers.CharField()
    day = serializers.DateField(required=False)
    sample = serializers.IntegerField(required=False, min_value=0)


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    """GET: replay runs. POST {release, day?, sample?}: start one (202; poll the run)."""

    serializer_class = RunSerializer
    permission_classes = [IsAuthenticated]
    queryset = ShadowRun.objects.select_related("release").order_by("-id")

    def create(self, request):
        from .tasks import shadow_run_execute

        data = RunStartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            run = replay.shadow_run_create(release=data.validated_data["release"], day=data.validated_data.get("day"),
                                           sample=data.validated_data.get("sample"), user=request.user.get_username())
        except replay.ShadowError as e:
            raise ValidationError({"release": str(e)}) from None
        transaction.on_commit(lambda: shadow_run_execute.delay(run.pk))
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class JudgeRunSerializer(serializers.ModelSerializer):
    release = serializers.CharField(source="release.name", default=None)

    class Meta:
        model = JudgeRun
        fields = ["id", "release", "judge_model", "prompt_version", "status", "pairs", "judged", "candidate_wins",
                  "served_wins", "ties", "inconsistent", "failed", "dropped_codes", "requests", "cost_usd", "error",
                  "created_at", "finished_at"]


class JudgeRunViewSet(viewsets.ReadOnlyModelViewSet):
    """GET: judge passes. POST {release?}: judge every unjudged pair (202; poll the run)."""

    serializer_class = JudgeRunSerializer
    permission_classes = [IsAuthenticated]
    queryset = JudgeRun.objects.select_related("release").order_by("-id")

    def create(self, request):
        from .tasks import shadow_judge_execute

        try:
            run = judge.judge_run_create(release=request.data.get("release") or None,
                                         user=request.user.get_username())
        except (judge.JudgeError, LLMNotConfigured, PromptMissing) as e:
            raise ValidationError({"detail": str(e)}) from None
        transaction.on_commit(lambda: shadow_judge_execute.delay(run.pk))
        return Response(JudgeRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class CalibrationSerializer(serializers.ModelSerializer):
    class Meta:
        model = JudgeCalibration
        fields = ["id", "name", "sha256", "judge_model", "prompt_version", "pairs", "result", "cost_usd", "created_at"]


class CalibrationViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = CalibrationSerializer
    permission_classes = [IsAuthenticated]
    queryset = JudgeCalibration.objects.order_by("-id")


class AuditAgreementApi(APIView):
    """GET /api/shadow/audit/agreement/?release=NAME: judge vs people, month by month."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response(selectors.audit_agreement_by_month(release=request.query_params.get("release") or None))


