"""Taxonomy API: every role but ingest reads (annotators see it in Label Studio anyway); only
taxonomy admins (permission taxonomy.govern_taxonomy) change it."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import TAXONOMY_GOVERN, TAXONOMY_READ, Allow, has, redact_value

from . import services
from .models import Proposal, TaxonomyChange
from .selectors import current_version, failure_mode_tree, pending_proposals


class ProposalSerializer(serializers.ModelSerializer):
    count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Proposal
        fields = ["id", "text", "wordings", "refs", "count", "status", "decided_by", "decision_reason",
                  "created_at", "decided_at"]

    def to_representation(self, instance):
        """Proposals are annotators' free text, raw: those who govern the taxonomy decide on them as
        written; every other role reading the taxonomy sees them redacted, without who or where."""
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is not None and has(request.user, TAXONOMY_GOVERN):
            return data
        return {**{k: data[k] for k in ("id", "count", "status", "created_at", "decided_at") if k in data},
                "text": redact_value(data["text"]), "wordings": redact_value(data["wordings"])}


class TaxonomyApi(APIView):
    permission_classes = [Allow(GET=TAXONOMY_READ)]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response({"version": current_version(), "modes": failure_mode_tree(),
                         "pending_proposals": ProposalSerializer(pending_proposals(), many=True,
                                                                 context={"request": request}).data})


class ActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(["create", "rename", "reparent", "retire", "merge", "critical", "approve",
                                      "reject"])
    code = serializers.CharField(required=False, allow_blank=False)
    name = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    parent = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    into = serializers.CharField(required=False)
    proposal = serializers.IntegerField(required=False)
    critical = serializers.BooleanField(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class TaxonomyActionApi(APIView):
    """POST one review action: create, rename, reparent, retire, merge, critical (set or clear the
    flag: `critical` true/false, a reason required), approve (a proposal), reject."""

    permission_classes = [Allow(POST=TAXONOMY_GOVERN)]

    @extend_schema(request=ActionSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        s = ActionSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        d = s.validated_data
        try:
            result = services.taxonomy_action(user=request.user, **d)
        except services.TaxonomyError as e:
            return Response({"detail": str(e)}, status=status.HTTP_400_BAD_REQUEST)
        except KeyError as e:
            return Response({"detail": f"{e.args[0]}: required for {d['action']}"}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"ok": True, "version": current_version(), **result})


class ChangeSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number")

    class Meta:
        model = TaxonomyChange
        fields = ["id", "action", "code", "details", "reason", "actor", "version", "created_at"]


class TaxonomyHistoryApi(APIView):
    permission_classes = [Allow(GET=TAXONOMY_READ)]

    @extend_schema(responses={200: ChangeSerializer(many=True)})
    def get(self, request):
        return Response(ChangeSerializer(TaxonomyChange.objects.select_related("version")[:500], many=True).data)
