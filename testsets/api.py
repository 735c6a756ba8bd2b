import uuid
from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors


class VersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    note = serializers.CharField()
    sha256 = serializers.CharField()
    item_count = serializers.IntegerField()
    frozen_at = serializers.DateTimeField()


class TestSetListApi(APIView):
    def get(self, request):
        # Newest first from the prefetched versions (an order_by here would query once per test set).
        return Response([{"name": t.name, "versions": VersionSerializer(sorted(t.versions.all(), key=lambda v: -v.number),
                                                                        many=True).data}
                         for t in selectors.testset_list()])


class ChangelogApi(APIView):
    def get(self, request, name: str):
        try:
            old, new = int(request.query_params["from"]), int(request.query_params["to"])
            return Response(selectors.changelog(name=name, old=old, new=new))
        except (KeyError, ValueError):
            raise ValidationError({"from": "pass ?from=N&to=M (version numbers)"}) from None
        except selectors.TestSetError as e:
            raise NotFound(str(e)) from None


class CoverageApi(APIView):
    def get(self, request, name: str, number: int):
        try:
            return Response(selectors.coverage(name=name, number=number))
        except selectors.TestSetError as e:
            raise NotFound(str(e)) from None


class ExportApi(APIView):
    def get(self, request, name: str, number: int, fmt: str):
        from .exports import FORMATS, content_type_and_filename

        if fmt not in FORMATS:
            raise ValidationError({"format": f"one of {', '.join(FORMATS)}"})
        try:
            version = selectors.version_get(name=name, number=number)
        except selectors.TestSetError as e:
            raise NotFound(str(e)) from None
        content_type, filename = content_type_and_filename(version, fmt)
        return FileResponse(open(export_cached(version, fmt, filename), "rb"), as_attachment=True, filename=filename,
                            content_type=content_type)


def export_cached(version, fmt: str, filename: str) -> Path:
    """A frozen version never changes, so its export is written once and served from disk; a draft's
    is written anew each time."""
    from .exports import export_version

    folder = Path(settings.MEDIA_ROOT) / "exports" / (version.sha256 or f"draft-{version.pk}-{uuid.uuid4().hex}")
    path = folder / filename
    if not path.exists() or not version.sha256:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{filename}.{uuid.uuid4().hex}"
        written = export_version(version, fmt, tmp)
        written.replace(path)
    return path
