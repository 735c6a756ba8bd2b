from django.urls import path

from . import views

app_name = "generation-web"
urlpatterns = [
    path("report/", views.report, name="report"),
    path("report/<str:code>/", views.report, name="report-mode"),
]
