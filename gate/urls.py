from django.urls import path

from . import api

urlpatterns = [
    path("", api.GateApi.as_view(), name="gate"),
    path("decisions/", api.DecisionListApi.as_view(), name="gate-decision-list"),
    path("decisions/<int:pk>/", api.DecisionDetailApi.as_view(), name="gate-decision-detail"),
]
