from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/labelling/", include("labelling.urls")),
    path("api/taxonomy/", include("taxonomy.urls")),
    path("api/testsets/", include("testsets.urls")),
    path("api/generation/", include("generation.urls")),
    path("api/releases/", include("releases.urls")),
    path("api/evaluation/", include("evaluation.urls")),
    path("api/shadow/", include("shadow.urls")),
    path("api/", include("production.urls")),
    path("generation/", include("generation.web_urls")),
    path("exports/", include("testsets.web_urls")),
    path("", include("dashboard.urls")),
]
