from django.http import Http404
from django.shortcuts import render

from core.roles import DASHBOARDS, require_perm

from . import selectors


@require_perm(DASHBOARDS)
def report(request, code: str | None = None):
    rows = selectors.generation_report(code=code)
    if code is not None and not rows:
        raise Http404(f"failure mode {code!r} does not exist")
    runs = selectors.run_list(code=code)[:50]
    return render(request, "generation/report.html", {"rows": rows, "code": code, "runs": runs})
