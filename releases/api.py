from rest_framework import serializers, status
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response

from core.roles import Allow, has

from . import services
from .models import Release


class ReleaseSerializer(serializers.ModelSerializer):
    system_prompt_file = serializers.CharField(write_only=True, required=False)

    class Meta:
        model = Release
        fields = ["id", "name", "model", "prompt_version", "base_url", "api_key_env", "system_prompt",
                  "shadow_enabled", "notes", "data_boundary", "created_at", "system_prompt_file"]
        read_only_fields = ["id", "created_at"]

    # What a release is configured with (its prompt, where it is served, which key it uses) is for
    # those who may add releases: a viewer sees which releases exist and what they are, not these.
    configuration_fields = ("system_prompt", "base_url", "api_key_env")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not has(request.user, "releases.add_release"):
            for f in self.configuration_fields:
                data.pop(f, None)
        return data


class ReleaseListApi(ListAPIView):
    """GET: the releases. POST: add one (`name`, `model`, optional `prompt_version`, `base_url`,
    `api_key_env`, `system_prompt`, `shadow_enabled`, `data_boundary`: same | redacted, default redacted)."""

    queryset = Release.objects.all()
    serializer_class = ReleaseSerializer
    permission_classes = [Allow(GET="releases.view_release", POST="releases.add_release")]

    def post(self, request):
        data = ReleaseSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = {k: data.validated_data.get(k) for k in ("name", "model", "prompt_version", "base_url", "api_key_env",
                                                     "system_prompt", "shadow_enabled", "notes", "data_boundary")}
        try:
            release, _ = services.release_add(**{k: val for k, val in v.items() if val is not None},
                                              user=request.user.get_username())
        except services.ReleaseError as e:
            return Response({"detail": str(e)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(ReleaseSerializer(release, context={"request": request}).data, status=status.HTTP_201_CREATED)


class ReleaseDetailApi(RetrieveAPIView):
    permission_classes = [Allow(GET="releases.view_release")]
    queryset = Release.objects.all()
    serializer_class = ReleaseSerializer
    lookup_field = "name"
