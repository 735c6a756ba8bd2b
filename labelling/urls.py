from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()  # no browsable root view: every URL here has its own access rule
router.register("batches", api.BatchViewSet, basename="labelling-batch")
router.register("annotations", api.AnnotationViewSet, basename="annotation")

urlpatterns = [
    path("webhook/", api.WebhookView.as_view(), name="labelling-webhook"),
    path("agreement/", api.AgreementApi.as_view(), name="labelling-agreement"),
    path("", include(router.urls)),
]
