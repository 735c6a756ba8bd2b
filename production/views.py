"""What a web app's pages call: the events script, and the endpoint it posts to with a publishable
key. Plain Django views, outside DRF: a publishable key authenticates nothing, it only lets its
origins add events (services/browser_events.py)."""
import json
from pathlib import Path

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from core.roles import public

from .services.browser_events import Refused, browser_event_add

SCRIPT = Path(__file__).resolve().parent / "static" / "evalgap-events.js"
MAX_BODY = 4096


@public
@require_http_methods(["GET", "HEAD"])
def events_script(request):
    response = HttpResponse(SCRIPT.read_bytes(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _cors(response, origin: str):
    response["Access-Control-Allow-Origin"] = origin
    response["Vary"] = "Origin"
    return response


@public
@csrf_exempt  # no cookie is read: the key in the body and the Origin header decide
@require_http_methods(["POST", "OPTIONS"])
def browser_events(request):
    origin = request.headers.get("Origin", "")
    if request.method == "OPTIONS":  # a preflight (a page sending application/json)
        response = HttpResponse(status=204)
        response["Access-Control-Allow-Methods"] = "POST"
        response["Access-Control-Allow-Headers"] = "Content-Type"
        response["Access-Control-Max-Age"] = "600"
        return _cors(response, origin) if origin else response
    if len(request.body) > MAX_BODY:
        return JsonResponse({"error": f"body: at most {MAX_BODY} bytes"}, status=413)
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": "body: a JSON object is expected"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse({"error": "body: a JSON object is expected"}, status=400)
    try:
        result = browser_event_add(key=str(payload.get("key") or ""), origin=origin, payload=payload)
    except Refused as e:
        response = JsonResponse({"error": e.message}, status=e.status)
        # Only an allowed origin may read why (a bad field or the rate); others learn nothing.
        return _cors(response, origin) if e.status in (400, 429) else response
    return _cors(JsonResponse({"stored": result.events, "duplicate": not result.events}, status=202), origin)
