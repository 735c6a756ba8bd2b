from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.roles import DASHBOARDS, INGEST, Allow
from core.views import health
from production.views import events_script

# The schema describes every endpoint (not its data): for whoever uses the API, ingest services too.
_schema_rule = [Allow(GET=(DASHBOARDS, INGEST))]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz/", health, name="health"),
    path("evalgap-events.js", events_script, name="evalgap-events-js"),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=_schema_rule), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=_schema_rule),
         name="api-docs"),
    path("api/labelling/", include("labelling.urls")),
    path("api/taxonomy/", include("taxonomy.urls")),
    path("api/testsets/", include("testsets.urls")),
    path("api/generation/", include("generation.urls")),
    path("api/releases/", include("releases.urls")),
    path("api/evaluation/", include("evaluation.urls")),
    path("api/shadow/", include("shadow.urls")),
    path("api/gate/", include("gate.urls")),
    path("api/", include("production.urls")),
    path("generation/", include("generation.web_urls")),
    path("exports/", include("testsets.web_urls")),
    path("", include("dashboard.urls")),
]
