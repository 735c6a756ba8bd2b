from django.urls import path

from . import api

urlpatterns = [
    path("correlation/", api.CorrelationReportView.as_view(), name="evaluation-correlation"),
    path("signal-validity/", api.SignalValidityView.as_view(), name="evaluation-signal-validity"),
    path("releases/<path:name>/production-rates/", api.ProductionRatesView.as_view(),
         name="evaluation-production-rates"),
    path("offline-runs/", api.OfflineRunListView.as_view(), name="evaluation-offline-runs"),
    path("offline-runs/<int:run_id>/", api.OfflineRunDetailView.as_view(), name="evaluation-offline-run"),
    path("alarms/", api.AlarmListView.as_view(), name="evaluation-alarms"),
]
