from django.urls import include, path
from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter()
router.register("batches", api.BatchViewSet, basename="labelling-batch")
router.register("annotations", api.AnnotationViewSet, basename="annotation")

urlpatterns = [
    path("webhook/", api.WebhookView.as_view(), name="labelling-webhook"),
    path("agreement/", api.AgreementApi.as_view(), name="labelling-agreement"),
    path("", include(router.urls)),
]
