from django.urls import path

from .api import ReportApi

app_name = "generation"
urlpatterns = [
    path("report/", ReportApi.as_view(), name="report"),
    path("report/<str:code>/", ReportApi.as_view(), name="report-mode"),
]
