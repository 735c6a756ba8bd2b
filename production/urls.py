from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api, views

router = SimpleRouter()  # no browsable root view: every URL here has its own access rule
router.register("ingest/jobs", api.IngestJobViewSet, basename="ingest-job")
router.register("turns", api.TurnViewSet, basename="turn")
router.register("sessions", api.SessionViewSet, basename="session")
router.register("events", api.EventViewSet, basename="event")
router.register("rejects", api.RejectedLineViewSet, basename="rejected-line")
router.register("failures", api.FailureViewSet, basename="failure")

urlpatterns = [
    path("ingest/", api.IngestApi.as_view(), name="ingest"),
    # OTLP exporters post to the exact path (no trailing slash); Langfuse's SDK to its own path.
    path("otlp/v1/traces", api.OtlpTracesApi.as_view(), name="otlp-traces"),
    path("public/otel/v1/traces", api.OtlpTracesApi.as_view(), name="otlp-traces-langfuse"),
    path("browser-events/", views.browser_events, name="browser-events"),
    path("privacy/erase/", api.EraseSubjectApi.as_view(), name="erase-subject"),
    path("signals/daily/", api.SignalRatesDailyApi.as_view(), name="signals-daily"),
    path("", include(router.urls)),
]
