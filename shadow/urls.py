from django.urls import include, path
from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter()
router.register("pairs", api.PairViewSet, basename="shadow-pair")
router.register("runs", api.RunViewSet, basename="shadow-run")
router.register("judge-runs", api.JudgeRunViewSet, basename="shadow-judge-run")
router.register("calibrations", api.CalibrationViewSet, basename="shadow-calibration")

urlpatterns = [
    path("releases/<path:name>/report/", api.ReportApi.as_view(), name="shadow-report"),
    path("releases/<path:name>/daily/", api.DailyApi.as_view(), name="shadow-daily"),
    path("audit/agreement/", api.AuditAgreementApi.as_view(), name="shadow-audit-agreement"),
    path("", include(router.urls)),
]
