from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from .roles import public


@public
@require_GET
def health(request):
    """For the container healthcheck: the process answers and reaches its database. Says nothing else."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure is "unhealthy", the details stay in the logs
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})
