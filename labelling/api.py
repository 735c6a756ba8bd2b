import hmac
import json

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.http import JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from .agreement import agreement_report
from .models import Annotation, LabellingBatch
from .services.annotations import webhook_delivery_record
from .tasks import webhook_delivery_process


@method_decorator(csrf_exempt, name="dispatch")
class WebhookView(View):
    """Label Studio's webhook. It signs nothing, so a shared secret header is required; the body is
    stored and processed by a task, answering at once (Label Studio waits only 1 s)."""

    def post(self, request):
        expected = settings.LABEL_STUDIO_WEBHOOK_SECRET
        given = request.headers.get(settings.LABEL_STUDIO_WEBHOOK_HEADER, "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return JsonResponse({"detail": "missing or wrong webhook secret"}, status=401)
        try:
            payload = json.loads(request.body)
        except ValueError:
            return JsonResponse({"detail": "body: invalid JSON"}, status=400)
        if not isinstance(payload, dict) or "action" not in payload:
            return JsonResponse({"detail": "body: expected a Label Studio webhook object with 'action'"}, status=400)
        delivery = webhook_delivery_record(payload=payload)
        transaction.on_commit(lambda: webhook_delivery_process.delay(delivery.pk))
        return JsonResponse({"received": delivery.pk})


class BatchSerializer(serializers.ModelSerializer):
    items = serializers.IntegerField(source="item_count", read_only=True)

    class Meta:
        model = LabellingBatch
        fields = ["id", "created_at", "month", "seed", "sample_size", "include_failures", "failures", "sampled",
                  "skipped_duplicates", "status", "pushed_at", "error", "items"]


class BatchViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = LabellingBatch.objects.annotate(item_count=Count("items")).order_by("-id")
    serializer_class = BatchSerializer


class AnnotationSerializer(serializers.ModelSerializer):
    turn_id = serializers.CharField(source="item.turn.external_id")
    source = serializers.CharField(source="item.turn.source.name")
    stratum = serializers.CharField(source="item.stratum")
    inclusion_probability = serializers.FloatField(source="item.inclusion_probability")

    class Meta:
        model = Annotation
        fields = ["id", "ls_annotation_id", "ls_task_id", "turn_id", "source", "stratum", "inclusion_probability",
                  "annotator", "verdict", "failure_modes", "reference_answer", "proposed_failure_mode", "notes",
                  "lead_time", "ls_created_at", "ls_updated_at", "invalid_reason", "deleted", "deleted_at"]


class AnnotationViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Annotation.objects.select_related("item__turn__source").order_by("id")
    serializer_class = AnnotationSerializer
    filterset_fields = ["verdict", "annotator", "deleted", "project"]


class AgreementApi(APIView):
    def get(self, request):
        project = request.query_params.get("project")
        return Response(agreement_report(project_id=int(project) if project else None))
