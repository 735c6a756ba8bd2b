from django.urls import path

from .api import ReportApi, ReportModeApi

app_name = "generation"
urlpatterns = [
    path("report/", ReportApi.as_view(), name="report"),
    path("report/<str:code>/", ReportModeApi.as_view(), name="report-mode"),
]
