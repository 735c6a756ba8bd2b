"""The page a large version's download links lead to: it starts the export job, shows it while a worker
writes the file, then links to the download."""
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.roles import TESTSETS_EXPORT, require_perm

from . import selectors, tasks
from .models import TestSetVersion
from .services import exports


@require_perm(TESTSETS_EXPORT)
@require_http_methods(["GET", "POST"])
def export_page(request, name: str, number: int, fmt: str):
    try:
        version = selectors.version_get(name=name, number=number)
    except selectors.TestSetError as e:
        raise Http404(str(e)) from None
    if not selectors.version_readable(version, request.user):
        raise PermissionDenied(selectors.version_unreadable_reason(version))
    if version.status != TestSetVersion.Status.FROZEN or fmt not in selectors.export_formats():
        raise Http404("only a frozen version is exported, in one of the formats")
    if request.method == "POST":
        job = exports.export_request(version=version, fmt=fmt, user=request.user)
        tasks.export_job_enqueue(job)
        return redirect(request.path)
    job = selectors.export_latest(version=version, fmt=fmt)
    return render(request, "testsets/export.html", {
        "name": name, "version": version, "fmt": fmt, "job": job,
        "refresh": job is not None and not job.is_finished})
