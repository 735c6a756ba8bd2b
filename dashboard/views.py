"""Server-rendered pages, each behind its role permission (core.roles.require_perm); taxonomy changes
need taxonomy.govern_taxonomy, checked on every POST (hiding the forms is a courtesy, not the control).
Turn text on a page passes `shown_to` (redacted unless the user may see raw turns)."""
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.roles import DASHBOARDS, TAXONOMY_GOVERN, TAXONOMY_READ, TESTSETS_READ, has, redact_value, require_perm
from evaluation import selectors as evaluation
from labelling import selectors as labelling
from production import selectors as production
from taxonomy import services as taxonomy_services
from taxonomy.selectors import current_version, failure_mode_tree, pending_proposals
from testsets import selectors as testsets

from . import charts
from . import selectors as dash
from .forms import TaxonomyActionForm


@require_perm(DASHBOARDS)
def overview(request):
    daily = dash.signal_series(by_model=False)
    by_model = dash.signal_series(by_model=True)
    overall = production.signal_rates_overall()
    pareto = labelling.failure_mode_pareto()
    waiting = labelling.failure_candidates_unsent()
    context = {
        "overall": overall,
        "overall_rates": [(label, charts.percent(overall.get(f"{key}_rate", 0.0))) for key, label in dash.SIGNALS],
        "daily_chart": charts.line_chart(chart_id="signal-rates-daily", title="Signal rates per day, all models",
                                         x=daily["days"], series=daily["series"], width=1100, height=280),
        "model_charts": [(label, charts.line_chart(chart_id=f"signal-rates-{label}", title=f"{label.capitalize()} "
                                                   "rate per day, by model", x=by_model["days"], series=lines,
                                                   width=560, height=200))
                         for label, lines in by_model["per_signal"].items()],
        "models": by_model["models"],
        "waiting_count": waiting.count(),
        "candidate_count": production.failure_candidates().count(),
        "waiting": list(waiting.select_related("signals")[:10]),
        "rephrased": production.top_rephrased_failures(limit=5),
        "progress": labelling.labelling_progress(),
        "pareto": pareto,
        "pareto_chart": charts.bar_chart(chart_id="failure-mode-pareto", title="Failure modes in labelled items "
                                         "(Pareto)", bars=[(p["code"], p["items"]) for p in pareto], pareto=True,
                                         width=1000),
    }
    return render(request, "dashboard/overview.html", context)


@require_perm(TESTSETS_READ)
def testset_list(request):
    sets = [{"name": t.name, "description": t.description, "versions": sorted(t.versions.all(),
                                                                               key=lambda v: -v.number)}
            for t in testsets.testset_list()]
    return render(request, "dashboard/testsets.html", {"testsets": sets, "formats": testsets.export_formats()})


@require_perm(TESTSETS_READ)
def testset_detail(request, name: str):
    version_rows = list(testsets.version_list(name=name))
    if not version_rows:
        raise Http404(f"no test set {name!r}")
    return render(request, "dashboard/testset_detail.html", {
        "name": name, "versions": version_rows, "formats": testsets.export_formats(),
        "numbers": [v.number for v in version_rows]})


@require_perm(TESTSETS_READ)
def version_detail(request, name: str, number: int):
    try:
        version = testsets.version_get(name=name, number=number)
    except testsets.TestSetError as e:
        raise Http404(str(e)) from None
    if not testsets.version_readable(version, request.user):
        raise PermissionDenied(testsets.version_unreadable_reason(version))
    cov = testsets.coverage(name=name, number=number)
    modes = cov["failure_modes"]
    strata = [s for s in cov["strata"] if s["items"] or s["production_rate"]]
    return render(request, "dashboard/version_detail.html", {
        "name": name, "version": version, "coverage": cov, "strata": strata, "formats": testsets.export_formats(),
        "modes_chart": charts.grouped_bar_chart(
            chart_id="coverage-modes", title=f"{name} v{number}: failure modes in the set vs in production",
            groups=[m["code"] for m in modes],
            series=[("share in set", [m["share_in_set"] for m in modes]),
                    ("production rate", [m["production_rate"] for m in modes])]),
        "strata_chart": charts.grouped_bar_chart(
            chart_id="coverage-strata", title=f"{name} v{number}: strata in the set vs in production",
            groups=[s["stratum"] for s in strata],
            series=[("share in set", [s["share_in_set"] for s in strata]),
                    ("production rate", [s["production_rate"] for s in strata])]),
    })


@require_perm(TESTSETS_READ)
def changelog(request, name: str):
    numbers = [v.number for v in testsets.version_list(name=name)]
    if not numbers:
        raise Http404(f"no test set {name!r}")
    try:
        old = int(request.GET.get("from") or (numbers[1] if len(numbers) > 1 else numbers[0]))
        new = int(request.GET.get("to") or numbers[0])
        for number in (old, new):
            version = testsets.version_get(name=name, number=number)
            if not testsets.version_readable(version, request.user):
                raise PermissionDenied(testsets.version_unreadable_reason(version))
        log = testsets.changelog(name=name, old=old, new=new)
    except ValueError:
        # TestSetError is a ValueError too: an unknown number is a bad request, shown on the page.
        return render(request, "dashboard/changelog.html", {
            "name": name, "numbers": numbers, "error": "pick two versions of this test set"}, status=400)
    return render(request, "dashboard/changelog.html", {"name": name, "numbers": numbers, "log": log,
                                                        "old": old, "new": new})


@require_perm(TAXONOMY_READ)
def taxonomy(request):
    modes = failure_mode_tree()
    can_govern = has(request.user, TAXONOMY_GOVERN)
    proposals = list(pending_proposals())
    if not can_govern:  # annotators' raw free text: redacted for every role that does not decide on it
        proposals = [{"id": p.id, "text": redact_value(p.text), "wordings": redact_value(p.wordings),
                      "count": p.count, "created_at": p.created_at} for p in proposals]
    return render(request, "dashboard/taxonomy.html", {
        "version": current_version(), "modes": _tree_order(modes), "proposals": proposals,
        "can_govern": can_govern, "active_codes": [m["code"] for m in modes if m["active"]],
        "all_codes": [m["code"] for m in modes],
    })


def _tree_order(modes: list[dict]) -> list[dict]:
    """Depth-first, children under their parent, with the depth for indenting."""
    children: dict[str | None, list[dict]] = {}
    for m in modes:
        children.setdefault(m["parent"], []).append(m)
    out = []

    def walk(parent, depth):
        for m in children.get(parent, []):
            out.append({**m, "depth": depth})
            walk(m["code"], depth + 1)

    walk(None, 0)
    return out


@require_perm(TAXONOMY_GOVERN)
@require_POST
def taxonomy_action(request):
    form = TaxonomyActionForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
        messages.error(request, f"Not done — {errors}")
        return redirect(reverse("dashboard:taxonomy"))
    fields = form.action_fields()
    try:
        result = taxonomy_services.taxonomy_action(user=request.user, **fields)
    except taxonomy_services.TaxonomyError as e:
        messages.error(request, f"{fields['action']} not done — {e}")
    else:
        done = {"approve": "approved as", "reject": "rejected", "create": "created", "rename": "renamed",
                "reparent": "moved", "retire": "retired", "merge": "merged into",
                "critical": "set the critical flag of"}[fields["action"]]
        target = result.get("code") or f"proposal {fields.get('proposal')}"
        messages.success(request, f"{fields['action'].capitalize()}: {done} {target} "
                                  f"(taxonomy v{current_version()}).")
    return redirect(reverse("dashboard:taxonomy"))


@require_perm(DASHBOARDS)
def correlation(request):
    """Offline score against production failure rate per release, and whether to trust the signals."""
    try:
        last = int(request.GET["last"]) if request.GET.get("last") else None
    except ValueError:
        last = None
    data = evaluation.correlation_data(last=last)
    plotted = [r for r in data["releases"] if r["offline_score"] is not None and r["production_failure_rate"] is not None]
    weekly = data["item_level_weekly"]
    return render(request, "dashboard/correlation.html", {
        "data": data,
        "rank": data["rank_correlation"],
        "unplotted": [r["name"] for r in data["releases"] if r not in plotted],
        "scatter": charts.scatter_whiskers(
            chart_id="offline-vs-production", title="Offline score vs production failure rate, per release",
            points=[(r["name"], r["offline_score"], tuple(r["offline_ci"]), r["production_failure_rate"],
                     tuple(r["production_ci"])) for r in plotted],
            x_label="offline score", y_label=f"failure rate, days 1–{data['window_days']}", width=1000,
            height=380),
        "weekly_chart": charts.line_chart(
            chart_id="item-auc-weekly", title="Item-level AUC per week (offline grade of served answers vs "
                                              "failure flag)", x=[w["week"] for w in weekly],
            series=[("AUC", [w["auc"] for w in weekly]),
                    ("trailing 4-week mean", [w["trailing_mean"] for w in weekly])],
            fmt=lambda v: f"{v:.2f}", width=1000, height=240),
        "alarms": evaluation.alarm_list(limit=50),
        "current_alarms": data["alarms"],
        "failure_model": evaluation.failure_model_summary(),
    })
