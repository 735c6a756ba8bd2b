from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import DASHBOARDS, Allow

from . import selectors


class ReportApi(APIView):
    """Per failure mode: real failures, generated, duplicates, approved, rejected (and why), cost."""

    permission_classes = [Allow(GET=DASHBOARDS)]

    @extend_schema(operation_id="generation_report", responses={200: OpenApiTypes.OBJECT})
    def get(self, request, code: str | None = None):
        rows = selectors.generation_report(code=code)
        if code is None:
            return Response(rows)
        if not rows:
            raise Http404(f"failure mode {code!r} does not exist")
        return Response(rows[0])


class ReportModeApi(ReportApi):
    """One failure mode's row of the report."""

    @extend_schema(operation_id="generation_report_mode", responses={200: OpenApiTypes.OBJECT})
    def get(self, request, code: str):
        return super().get(request, code)
