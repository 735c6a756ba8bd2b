"""What one redacted list response costs: 20 turns whose query, response, contexts and metadata are
each a 100k-character field, serialized for a viewer (TurnSerializer, as /api/turns/ does), with the
per-response budget (API_REDACT_MAX_CHARS) and without it (every field redacted up to FIELD_MAX_CHARS).
No database: the rows are built in memory, so the time is the redaction's (CPU time of this
process, as the other benchmarks take it: the wall clock of a shared machine says little).

    .venv/bin/python benchmarks/bench_redacted_list.py [--rows 20] [--chars 100000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalgap.settings")
os.environ.setdefault("DJANGO_DEBUG", "true")

TEXTS = {  # natural-ish text, and the slowest adversarial shape of benchmarks/bench_pii.py
    "natural": "Please call me at +44 20 7946 0958 or mail jane.doe@example.com about order 12345. ",
    "adversarial (12.34.)": "12.34.",
}


def rows(unit: str, n: int, chars: int):
    from production.models import Session, Source, Turn

    text = (unit * (chars // len(unit) + 1))[:chars]
    source = Source(name="bench")
    session = Session(source=source, external_id="s-1")
    return [Turn(id=i, source=source, session=session, external_id=f"t-{i}", position=i, query=text, response=text,
                 contexts=[text], metadata={"note": text}, user_id="u") for i in range(n)]


def main() -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import AnonymousUser
    from rest_framework.test import APIRequestFactory

    from core import pii
    from production.serializers import TurnSerializer

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20)
    ap.add_argument("--chars", type=int, default=100_000)
    args = ap.parse_args()
    request = APIRequestFactory().get("/api/turns/")
    request.user = AnonymousUser()  # no production.view_raw_turns: the viewer's redacted view
    print(f"| text | budget | characters read | CPU seconds |\n|---|---|---:|---:|")
    for name, unit in TEXTS.items():
        data = rows(unit, args.rows, args.chars)
        for label, budget in (("API_REDACT_MAX_CHARS=%d" % settings.API_REDACT_MAX_CHARS, settings.API_REDACT_MAX_CHARS),
                              ("none (every field to FIELD_MAX_CHARS)", 10**12)):
            settings.API_REDACT_MAX_CHARS = budget
            pii._cache.clear()
            ctx = {"request": request}
            start = time.process_time()
            TurnSerializer(data, many=True, context=ctx).data
            took = time.process_time() - start
            b = ctx["_redact_budget"]
            print(f"| {name} | {label} | {budget - b.left if budget < 10**12 else 10**12 - b.left} | {took:.2f} |",
                  flush=True)
        settings.API_REDACT_MAX_CHARS = 200_000


if __name__ == "__main__":
    main()
