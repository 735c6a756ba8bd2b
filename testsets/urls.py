from django.urls import path

from . import api

urlpatterns = [
    path("", api.TestSetListApi.as_view(), name="testsets"),
    path("exports/<int:pk>/", api.ExportJobApi.as_view(), name="testset-export-job"),
    path("exports/<int:pk>/download/", api.ExportDownloadApi.as_view(), name="testset-export-download"),
    path("<slug:name>/changelog/", api.ChangelogApi.as_view(), name="testset-changelog"),
    path("<slug:name>/versions/<int:number>/coverage/", api.CoverageApi.as_view(), name="testset-coverage"),
    path("<slug:name>/versions/<int:number>/export/<str:fmt>/", api.ExportApi.as_view(), name="testset-export"),
    path("<slug:name>/versions/<int:number>/exports/", api.ExportsApi.as_view(), name="testset-exports"),
]
