from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import TESTSETS_EXPORT, TESTSETS_READ, Allow

from . import selectors, tasks
from .exports import FORMATS, content_type_and_filename
from .models import ExportJob
from .services import exports


class VersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    note = serializers.CharField()
    sha256 = serializers.CharField()
    item_count = serializers.IntegerField()
    frozen_at = serializers.DateTimeField()
    redacted = serializers.BooleanField(help_text="false: frozen with raw text, read and exported by admins only")
    erased_subject_items = serializers.SerializerMethodField(help_text="items from subjects erased since")

    def get_erased_subject_items(self, version) -> int:
        counts = self.context.get("erased_subject_items")
        if counts is None:
            return selectors.erased_subject_items(version)
        return counts.get(version.pk, 0)


class TestSetListApi(APIView):
    permission_classes = [Allow(GET=TESTSETS_READ)]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        # Newest first from the prefetched versions (an order_by here would query once per test set).
        sets = list(selectors.testset_list())
        erased = selectors.erased_subject_items_by_version([v.pk for t in sets for v in t.versions.all()])
        return Response([{"name": t.name, "versions": VersionSerializer(sorted(t.versions.all(), key=lambda v: -v.number),
                                                                        many=True,
                                                                        context={"erased_subject_items": erased}).data}
                         for t in sets])


class ChangelogApi(APIView):
    permission_classes = [Allow(GET=TESTSETS_READ)]

    @extend_schema(parameters=[OpenApiParameter("from", int, required=True), OpenApiParameter("to", int, required=True)],
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name: str):
        try:
            old, new = int(request.query_params["from"]), int(request.query_params["to"])
            for number in (old, new):
                _readable(request, selectors.version_get(name=name, number=number))
            return Response(selectors.changelog(name=name, old=old, new=new))
        except (KeyError, ValueError):
            raise ValidationError({"from": "pass ?from=N&to=M (version numbers)"}) from None
        except selectors.TestSetError as e:
            raise NotFound(str(e)) from None


class CoverageApi(APIView):
    permission_classes = [Allow(GET=TESTSETS_READ)]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name: str, number: int):
        try:
            _readable(request, selectors.version_get(name=name, number=number))
            return Response(selectors.coverage(name=name, number=number))
        except selectors.TestSetError as e:
            raise NotFound(str(e)) from None


class ExportJobSerializer(serializers.ModelSerializer):
    testset = serializers.CharField(source="version.testset.name")
    version = serializers.IntegerField(source="version.number")
    url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField(help_text="when the export is done")

    class Meta:
        model = ExportJob
        fields = ["id", "testset", "version", "format", "options", "status", "error", "attempts", "created_at",
                  "started_at", "finished_at", "sha256", "size", "url", "download_url"]

    def get_url(self, job) -> str:
        return self.context["request"].build_absolute_uri(reverse("testset-export-job", args=[job.pk]))

    def get_download_url(self, job) -> str | None:
        if job.status != ExportJob.Status.DONE:
            return None
        return self.context["request"].build_absolute_uri(reverse("testset-export-download", args=[job.pk]))


class ExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FORMATS)
    csv_raw = serializers.BooleanField(default=False, help_text="csv: cells as they are (formulas not neutralised)")


def _readable(request, version):
    if not selectors.version_readable(version, request.user):
        raise PermissionDenied(selectors.version_unreadable_reason(version))
    return version


def _frozen_version(request, name: str, number: int):
    try:
        version = _readable(request, selectors.version_get(name=name, number=number))
    except selectors.TestSetError as e:
        raise NotFound(str(e)) from None
    if version.status != version.Status.FROZEN:
        raise ValidationError({"version": f"v{number} is a draft: only frozen versions are exported"})
    return version


def _accepted(request, job) -> Response:
    """202: the export runs in a worker; poll the job (Location), then download it."""
    tasks.export_job_enqueue(job)
    data = ExportJobSerializer(job, context={"request": request}).data
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


def _file_response(request, job):
    """The job's file, checked against its recorded sha256; a small version whose file changed is
    exported again here, a large one by a new job (202)."""
    try:
        f = exports.export_open(job)
    except exports.ExportFileChanged:
        if exports.exported_in_background(job.version):
            return _accepted(request, exports.export_redo(job=job))
        job = exports.export_redo(job=job, now=True)
        if job.status != job.Status.DONE:
            raise APIException(f"the export failed: {job.error}")
        f = exports.export_open(job)
    content_type, _ = content_type_and_filename(job.version, job.format)
    return FileResponse(f, as_attachment=True, filename=exports.export_path(job).name, content_type=content_type)


class ExportApi(APIView):
    permission_classes = [Allow(GET=TESTSETS_EXPORT)]

    @extend_schema(responses={200: OpenApiTypes.BINARY, 202: ExportJobSerializer},
                   description="The export file of a frozen version. A version of more than EXPORT_SYNC_MAX_ITEMS "
                               "items is exported by a worker: 202 and its export job (poll it, then download).")
    def get(self, request, name: str, number: int, fmt: str):
        if fmt not in FORMATS:
            raise ValidationError({"format": f"one of {', '.join(FORMATS)}"})
        version = _frozen_version(request, name, number)
        csv_raw = request.query_params.get("csv_raw") in ("1", "true")
        if exports.exported_in_background(version):
            return _accepted(request, exports.export_request(version=version, fmt=fmt, csv_raw=csv_raw,
                                                             user=request.user))
        job = exports.export_now(version=version, fmt=fmt, csv_raw=csv_raw, user=request.user)
        if job.status != job.Status.DONE:
            raise APIException(f"the export failed: {job.error}")
        return _file_response(request, job)


class ExportsApi(APIView):
    permission_classes = [Allow(POST=TESTSETS_EXPORT)]

    @extend_schema(request=ExportRequestSerializer, responses={200: ExportJobSerializer, 202: ExportJobSerializer},
                   description="Export a frozen version: 202 and an export job to poll for a version of more than "
                               "EXPORT_SYNC_MAX_ITEMS items; the finished job (with its download_url) for a smaller "
                               "one. A finished export whose file is intact is reused.")
    def post(self, request, name: str, number: int):
        params = ExportRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        version = _frozen_version(request, name, number)
        fmt, csv_raw = params.validated_data["format"], params.validated_data["csv_raw"]
        if exports.exported_in_background(version):
            return _accepted(request, exports.export_request(version=version, fmt=fmt, csv_raw=csv_raw,
                                                             user=request.user))
        job = exports.export_now(version=version, fmt=fmt, csv_raw=csv_raw, user=request.user)
        code = status.HTTP_200_OK if job.status == job.Status.DONE else status.HTTP_500_INTERNAL_SERVER_ERROR
        return Response(ExportJobSerializer(job, context={"request": request}).data, status=code)


class ExportJobApi(APIView):
    permission_classes = [Allow(GET=TESTSETS_EXPORT)]

    @extend_schema(responses={200: ExportJobSerializer})
    def get(self, request, pk: int):
        job = get_object_or_404(ExportJob.objects.select_related("version__testset"), pk=pk)
        _readable(request, job.version)
        return Response(ExportJobSerializer(job, context={"request": request}).data)


class ExportDownloadApi(APIView):
    permission_classes = [Allow(GET=TESTSETS_EXPORT)]

    @extend_schema(responses={200: OpenApiTypes.BINARY, 202: ExportJobSerializer, 409: ExportJobSerializer})
    def get(self, request, pk: int):
        job = get_object_or_404(ExportJob.objects.select_related("version__testset"), pk=pk)
        _readable(request, job.version)
        if job.status != job.Status.DONE:
            return Response(ExportJobSerializer(job, context={"request": request}).data,
                            status=status.HTTP_409_CONFLICT)
        return _file_response(request, job)
