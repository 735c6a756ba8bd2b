import uuid
from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import TESTSETS_EXPORT, TESTSETS_READ, Allow

from . import selectors


class VersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    note = serializers.CharField()
    sha256 = serializers.CharField()
    item_count = serializers.IntegerField()
    frozen_at = serializers.DateTimeField()


class TestSetListApi(APIView):
    permission_classes = [Allow(GET=TESTSETS_READ)]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        # Newest first from the prefetched versions (an order_by here would query once per test set).
        return Response([{"name": t.name, "versions": VersionSerializer(sorted(t.versions.all(), key=lambda v: -v.number),
                                                                        many=True).data}
                         for t in selectors.testset_list()])


class ChangelogApi(APIView):
    permission_classes = [Allow(GET=TESTSETS_READ)]

    @extend_schema(parameters=[OpenApiParameter("from", int, required=True), OpenApiParameter("to", int, required=True)],
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name: str):
        try:
            old, new = int(request.query_params["from"]), int(request.query_params["to"])
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
            return Response(selectors.coverage(name=name, number=number))
        except selectors.TestSetError as e:
            raise NotFound(str(e)) from None


class ExportApi(APIView):
    permission_classes = [Allow(GET=TESTSETS_EXPORT)]

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, name: str, number: int, fmt: str):
        from .exports import FORMATS, content_type_and_filename

        if fmt not in FORMATS:
            raise ValidationError({"format": f"one of {', '.join(FORMATS)}"})
        try:
            version = selectors.version_get(name=name, number=number)
        except selectors.TestSetError as e:
            raise NotFound(str(e)) from None
        if version.status != version.Status.FROZEN:
            raise ValidationError({"version": f"v{number} is a draft: only frozen versions are exported"})
        content_type, filename = content_type_and_filename(version, fmt)
        return FileResponse(open(export_cached(version, fmt, filename), "rb"), as_attachment=True, filename=filename,
                            content_type=content_type)


def export_cached(version, fmt: str, filename: str) -> Path:
    """A frozen version never changes, so its export is written once and served from disk — after
    checking the file still has the bytes it was written with (the JSONL export must hash to the
    version's sha256; every other file to the digest kept next to it when it was written). A file
    that does not is written again."""
    from .exports import export_version, file_sha256

    root = (Path(settings.MEDIA_ROOT) / "exports").resolve()
    path = (root / version.sha256 / filename).resolve()
    if not version.sha256 or path.parent != root / version.sha256:
        # Names come from the database (test set names are slugs); never let one lead out of the folder.
        raise ValidationError({"version": "this version cannot be exported here (unsafe name or no sha256)"})
    digest = path.with_name(f"{filename}.sha256")
    if path.exists():
        expected = version.sha256 if fmt == "jsonl" else (digest.read_text().strip() if digest.exists() else "")
        if expected and file_sha256(path) == expected:
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{filename}.{uuid.uuid4().hex}")
    written = export_version(version, fmt, tmp)
    sha = file_sha256(written)
    if fmt == "jsonl" and sha != version.sha256:
        written.unlink()
        raise APIException("the version's items no longer hash to its sha256: not served")
    digest.write_text(sha + "\n")
    written.replace(path)
    return path
