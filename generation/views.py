from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from . import selectors


@login_required
def report(request, code: str | None = None):
    rows = selectors.generation_report(code=code)
    if code is not None and not rows:
        raise Http404(f"failure mode {code!r} does not exist")
    runs = selectors.run_list(code=code)[:50]
    return render(request, "generation/report.html", {"rows": rows, "code": code, "runs": runs})
