from django.urls import path

from . import api

urlpatterns = [
    path("", api.ReleaseListApi.as_view(), name="release-list"),
    path("<path:name>/", api.ReleaseDetailApi.as_view(), name="release-detail"),
]
