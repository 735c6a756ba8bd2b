"""The gate API: POST /api/gate/ asks for a decision (recorded, like the command's); the decisions
are listed per release and read one by one, with the evidence behind each. Reading needs a signed-in
user with dashboards (or a CI bot holding gate.ask_gate); asking needs the permission gate.ask_gate."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import ASK_GATE, DASHBOARDS, Allow

from . import selectors
from .models import GateDecision
from .policy import GateUsageError, policy_floor, policy_request
from .render import as_markdown
from .services import gate_decide

READ = Allow(GET=(DASHBOARDS, ASK_GATE))


def auth_kind(request) -> str:
    """How the caller proved who it is: "token" (a CI job), "session" (a person), or the class name."""
    name = type(getattr(request, "successful_authenticator", None)).__name__
    return {"TokenAuthentication": "token", "SessionAuthentication": "session",
            "BasicAuthentication": "basic"}.get(name, name.lower())


class AskSerializer(serializers.Serializer):
    candidate = serializers.CharField()
    baseline = serializers.CharField()
    testset = serializers.CharField(required=False, allow_blank=True)
    as_of = serializers.DateField(required=False, allow_null=True,
                                  help_text="YYYY-MM-DD: the decision on the evidence up to the end of that day")
    policy = serializers.JSONField(required=False, help_text="policy keys that tighten the server's policy (a "
                                                            "mapping); a looser value is refused (400, the key named)")


class GateAnswerSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(["ship", "block", "insufficient_evidence"])
    reasons = serializers.ListField(child=serializers.CharField())
    evidence = serializers.JSONField(
        help_text='{"offline": {…}, "shadow": {…}, "ab": {…}, "critical_modes": […], "guardrails": {…}}')
    id = serializers.IntegerField()
    exit_code = serializers.IntegerField(help_text="what release_gate exits with: 0 ship, 1 block, 3 insufficient")
    policy_sha256 = serializers.CharField()
    policy_source = serializers.CharField()
    as_of = serializers.DateField(allow_null=True)
    markdown = serializers.CharField(help_text="the decision rendered for a pull request or a job summary")


class DecisionSerializer(serializers.ModelSerializer):
    candidate = serializers.CharField(source="candidate.name")
    baseline = serializers.CharField(source="baseline.name")
    exit_code = serializers.IntegerField(read_only=True)

    class Meta:
        model = GateDecision
        fields = ["id", "candidate", "baseline", "decision", "exit_code", "reasons", "evidence", "policy",
                  "policy_sha256", "policy_source", "requested_by", "via", "auth", "as_of", "created_at"]


def decision_response(decision: GateDecision) -> dict:
    """The command's --json keys, then what a CI job needs: the id, the exit code the command would
    give, and the Markdown rendering for the job summary or the pull request."""
    return {**decision.as_json(), "id": decision.pk, "exit_code": decision.exit_code,
            "policy_sha256": decision.policy_sha256, "policy_source": decision.policy_source,
            "as_of": decision.as_of.isoformat() if decision.as_of else None, "markdown": as_markdown(decision)}


class GateApi(APIView):
    """POST {"candidate", "baseline", "testset"?, "policy"?, "as_of"?}: the decision (200 whatever it is; a CI
    job fails on `exit_code` != 0). 400 for usage errors (unknown release, missing test set, bad policy, a
    policy looser than the server's)."""

    permission_classes = [Allow(POST=ASK_GATE)]

    @extend_schema(request=AskSerializer, responses={200: GateAnswerSerializer})
    def post(self, request):
        s = AskSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        d = s.validated_data
        try:
            policy = policy_request(d["policy"]) if "policy" in d else policy_floor()
            decision = gate_decide(candidate=d["candidate"], baseline=d["baseline"],
                                   policy=policy.with_testset(d.get("testset")),
                                   requested_by=request.user.get_username(), via="api", auth=auth_kind(request),
                                   as_of=d.get("as_of"))
        except GateUsageError as e:
            return Response({"detail": str(e)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(decision_response(decision), status=status.HTTP_200_OK)


class DecisionListApi(ListAPIView):
    """GET ?release=NAME (as candidate or baseline), newest first."""

    permission_classes = [READ]
    serializer_class = DecisionSerializer

    def get_queryset(self):
        return selectors.decision_list(release=self.request.query_params.get("release") or None)


class DecisionDetailApi(APIView):
    permission_classes = [READ]

    @extend_schema(responses={200: DecisionSerializer})
    def get(self, request, pk: int):
        decision = selectors.decision_get(pk=pk)
        if decision is None:
            raise NotFound(f"no gate decision {pk}")
        return Response({**DecisionSerializer(decision).data, "markdown": as_markdown(decision)})
