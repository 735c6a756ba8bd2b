from django.urls import path

from . import api

urlpatterns = [
    path("", api.TestSetListApi.as_view(), name="testsets"),
    path("<slug:name>/changelog/", api.ChangelogApi.as_view(), name="testset-changelog"),
    path("<slug:name>/versions/<int:number>/coverage/", api.CoverageApi.as_view(), name="testset-coverage"),
    path("<slug:name>/versions/<int:number>/export/<str:fmt>/", api.ExportApi.as_view(), name="testset-export"),
]
