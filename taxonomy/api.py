"""Taxonomy API: everyone signed in reads; only admins (permission taxonomy.govern_taxonomy) change."""
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .models import Proposal, TaxonomyChange
from .selectors import current_version, failure_mode_tree, pending_proposals


class CanGovernTaxonomy(permissions.BasePermission):
    message = "only taxonomy admins can change the taxonomy"

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return bool(request.user and request.user.has_perm("taxonomy.govern_taxonomy"))


class ProposalSerializer(serializers.ModelSerializer):
    count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Proposal
        fields = ["id", "text", "wordings", "refs", "count", "status", "decided_by", "decision_reason",
                  "created_at", "decided_at"]


class TaxonomyApi(APIView):
    permission_classes = [CanGovernTaxonomy]

    def get(self, request):
        return Response({"version": current_version(), "modes": failure_mode_tree(),
                         "pending_proposals": ProposalSerializer(pending_proposals(), many=True).data})


class ActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(["create", "rename", "reparent", "retire", "merge", "approve", "reject"])
    code = serializers.CharField(required=False, allow_blank=False)
    name = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    parent = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    into = serializers.CharField(required=False)
    proposal = serializers.IntegerField(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class TaxonomyActionApi(APIView):
    """POST one review action: create, rename, reparent, retire, merge, approve (a proposal), reject."""

    permission_classes = [CanGovernTaxonomy]

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
    permission_classes = [CanGovernTaxonomy]

    def get(self, request):
        return Response(ChangeSerializer(TaxonomyChange.objects.select_related("version")[:500], many=True).data)
