"""Roles and data access: who may see and do what, in one place.

Five named roles, each a Django group holding permission codenames (named here by string, so
core imports nothing of ours; `roles_sync` creates the groups and permissions after every
migrate):

| role | can |
|---|---|
| `admin` | everything (a superuser; the Django admin too) |
| `taxonomy_admin` | govern the taxonomy, plus everything a viewer can |
| `annotator` | only what Label Studio shows: read the taxonomy. No turns, no exports |
| `viewer` | dashboards, redacted turns/sessions/events/failures, annotations, frozen exports |
| `ingest` | a service token: POST /api/ingest/ and read its own ingest jobs, nothing else |

Who may export a frozen test-set version (`testsets.export_testset`): `admin`, `taxonomy_admin` and
`viewer` — all get the same bytes, since a version stores only redacted, pseudonymised text
(docs/privacy.md); `annotator` and `ingest` may not export. A version frozen before promotion
redacted (`redacted` false) is read and exported by `admin` only (`testsets.view_unredacted_version`).
Erasing a subject and applying retention (`production.erase_subject`) are `admin` only.

Raw, unredacted turns (`production.view_raw_turns`), rejected lines
(`production.view_rejected_lines`) and webhook payloads (`labelling.view_webhook_payloads`) need
their own permission, which only `admin` holds. Assign a role with
`python manage.py user_add USERNAME --role ROLE [--token] [--json]` or in the admin (groups).

**Every endpoint says who may call it** — the default DRF permission refuses everyone, so a view
without a rule is closed, and `tests/test_roles.py` walks the URL conf and fails on any URL missing
from its table. For a new endpoint:

    from core.roles import DASHBOARDS, TURNS, Allow, require_perm

    class GateDecisionApi(APIView):                       # DRF: a rule per HTTP method
        permission_classes = [Allow(GET=DASHBOARDS, POST="gate.add_gatedecision")]

    @require_perm(DASHBOARDS)                             # a page (Django view)
    def gate_report(request): ...

then add the URL's name to `RULES` in tests/test_roles.py. A permission a rule names must be in
`PERMISSIONS` below (`Allow` refuses unknown ones at import) and in the roles that get it (a migrate
or `user_add` syncs the groups); reads of aggregates are `DASHBOARDS`, reads of turn text `TURNS`,
paid or governing actions a permission of their own given to `admin` (and `taxonomy_admin` if it is
governance). Serializers that show turn text use `RedactedFieldsMixin` (text through
`core.pii.redact` unless the user holds `production.view_raw_turns`); templates use
`{% load evalgap_access %}{{ text|shown_to:user }}`. A view that authenticates otherwise (a
webhook's shared secret, the sign-in page) is marked `@public`. List endpoints are paginated by
`CappedPagination` (settings `API_PAGE_SIZE`, `API_MAX_PAGE_SIZE`): a view that returns a list
without it caps its rows itself.
"""
from __future__ import annotations

from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from rest_framework import permissions
from rest_framework.pagination import LimitOffsetPagination

# --- the vocabulary ---------------------------------------------------------------------------

DASHBOARDS = "core.view_dashboards"
RAW_TURNS = "production.view_raw_turns"
REJECTED_LINES = "production.view_rejected_lines"
WEBHOOK_PAYLOADS = "labelling.view_webhook_payloads"
INGEST = "production.ingest_turns"
TURNS = "production.view_turn"
ALL_INGEST_JOBS = "production.view_ingestjob"
TAXONOMY_READ = "taxonomy.view_failuremode"
TAXONOMY_GOVERN = "taxonomy.govern_taxonomy"
TESTSETS_READ = "testsets.view_testset"
TESTSETS_EXPORT = "testsets.export_testset"
TESTSETS_UNREDACTED = "testsets.view_unredacted_version"
ERASE_SUBJECT = "production.erase_subject"
ASK_GATE = "gate.ask_gate"

# "app_label.codename" -> (model the permission hangs on, its description). Standard model
# permissions (view_turn, ...) are listed too, so a role never names one that does not exist.
PERMISSIONS: dict[str, tuple[str, str]] = {
    DASHBOARDS: ("access", "Can view dashboards and aggregate reports"),
    TURNS: ("turn", "Can view turn"),
    RAW_TURNS: ("turn", "Can view raw, unredacted turns, sessions and events"),
    REJECTED_LINES: ("rejectedline", "Can view rejected input lines (raw input)"),
    INGEST: ("ingestjob", "Can ingest production logs (POST /api/ingest/) and read own ingest jobs"),
    ALL_INGEST_JOBS: ("ingestjob", "Can view ingest job"),
    "labelling.view_labellingbatch": ("labellingbatch", "Can view labelling batch"),
    "labelling.view_annotation": ("annotation", "Can view annotation"),
    WEBHOOK_PAYLOADS: ("webhookdelivery", "Can view Label Studio webhook payloads"),
    TAXONOMY_READ: ("failuremode", "Can view failure mode"),
    TAXONOMY_GOVERN: ("failuremode", "Can change the failure taxonomy (admins)"),
    TESTSETS_READ: ("testset", "Can view test set"),
    TESTSETS_EXPORT: ("testset", "Can download exports of frozen test set versions"),
    # Versions frozen before promotion stored redacted text hold raw text (admins only).
    TESTSETS_UNREDACTED: ("testsetversion", "Can read and export test set versions frozen with raw text"),
    ERASE_SUBJECT: ("turn", "Can erase a production user's raw data (erase_subject)"),
    "releases.view_release": ("release", "Can view release"),
    "releases.add_release": ("release", "Can add release"),
    # Paid work (LLM calls): starting a shadow replay or a judge pass.
    "shadow.add_shadowrun": ("shadowrun", "Can add shadow run"),
    "shadow.add_judgerun": ("judgerun", "Can add judge run"),
    # ... and an offline run (the candidate and the grader are LLM calls).
    "evaluation.add_offlinerun": ("offlinerun", "Can add offline run"),
    # Asking the release gate records a decision that a CI job acts on: the admin's, or a CI bot
    # user given this one permission (admin: Users -> permissions).
    ASK_GATE: ("gatedecision", "Can ask the release gate for a decision (records it)"),
}

_VIEWER = (DASHBOARDS, TURNS, TAXONOMY_READ, TESTSETS_READ, TESTSETS_EXPORT, "labelling.view_labellingbatch",
           "labelling.view_annotation", "releases.view_release")
ROLES: dict[str, tuple[str, ...]] = {
    # A superuser as well: the groups' permissions are what the admin lists, not the limit.
    "admin": tuple(PERMISSIONS),
    "taxonomy_admin": (*_VIEWER, TAXONOMY_GOVERN),
    "annotator": (TAXONOMY_READ,),
    "viewer": _VIEWER,
    "ingest": (INGEST,),
}
assert all(p in PERMISSIONS for perms in ROLES.values() for p in perms)


def roles_sync() -> None:
    """Create or update the role groups and their permissions (idempotent; runs after migrate)."""
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    with transaction.atomic():
        perms = {}
        for dotted, (model, name) in PERMISSIONS.items():
            app_label, codename = dotted.split(".", 1)
            ct, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
            perms[dotted], _ = Permission.objects.get_or_create(content_type=ct, codename=codename,
                                                                defaults={"name": name})
        for role, names in ROLES.items():
            group, _ = Group.objects.get_or_create(name=role)
            group.permissions.set([perms[n] for n in names])


def role_of(user) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    names = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    if user.is_superuser:
        return "admin"
    return next((r for r in ROLES if r in names), None)


def user_role_set(*, user, role: str) -> None:
    """Give `user` exactly one role: its group, and superuser/staff only for admin."""
    from django.contrib.auth.models import Group

    if role not in ROLES:
        raise ValueError(f"role: unknown role {role!r} (one of {', '.join(ROLES)})")
    roles_sync()
    with transaction.atomic():
        user.groups.remove(*Group.objects.filter(name__in=[r for r in ROLES if r != role]))
        user.groups.add(Group.objects.get(name=role))
        user.is_superuser = user.is_staff = role == "admin"
        user.save(update_fields=["is_superuser", "is_staff"])


def has(user, perm: str) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(perm))


# --- DRF ----------------------------------------------------------------------------------------

class DenyAll(permissions.BasePermission):
    """The default permission class: a view that states no rule serves no one."""

    message = "this endpoint declares no access rule"

    def has_permission(self, request, view):
        return False


def Allow(**rules: str | tuple[str, ...]) -> type[permissions.BasePermission]:  # noqa: N802 - used like a class
    """A DRF permission class from one rule per HTTP method: a permission string, or a tuple of
    them (any one suffices). HEAD and OPTIONS follow GET; a method without a rule is refused.

        permission_classes = [Allow(GET="testsets.view_testset", POST="testsets.add_testset")]
    """
    table = {m.upper(): (r,) if isinstance(r, str) else tuple(r) for m, r in rules.items()}
    for perms in table.values():
        unknown = [p for p in perms if p not in PERMISSIONS]
        assert not unknown, f"Allow: unknown permission(s) {unknown}; add them to core.roles.PERMISSIONS"
    if "GET" in table:
        table.setdefault("HEAD", table["GET"])
        table.setdefault("OPTIONS", table["GET"])

    class _Allow(permissions.BasePermission):
        rules = table
        message = "your role does not allow this"

        def has_permission(self, request, view):
            needed = self.rules.get(request.method)
            return bool(needed) and any(has(request.user, p) for p in needed)

    _Allow.__name__ = "Allow(" + ", ".join(f"{m}={'|'.join(p)}" for m, p in table.items()) + ")"
    return _Allow


class CappedPagination(LimitOffsetPagination):
    """`?limit=` is honoured up to API_MAX_PAGE_SIZE, so no request reads a whole table."""

    @property
    def default_limit(self):
        return min(settings.API_PAGE_SIZE, settings.API_MAX_PAGE_SIZE)

    @property
    def max_limit(self):
        return settings.API_MAX_PAGE_SIZE


def redact_value(value: Any, budget=None) -> Any:
    """`value` as core.pii.redact_obj shows it: every string, dict key and card- or phone-long
    number inside it redacted, as on every other path; with a `core.pii.Budget`, drawing on it."""
    from core.pii import redact_obj

    if isinstance(value, bool) or not isinstance(value, (str, int, list, tuple, dict)):
        return value
    return redact_obj(value, budget=budget)


def redaction_budget(context: dict):
    """The one `core.pii.Budget` of a response (a serializer's context is shared by its rows):
    API_REDACT_MAX_CHARS characters redacted in full, then API_REDACT_FIELD_FLOOR per field."""
    from core.pii import Budget

    budget = context.get("_redact_budget")
    if budget is None:
        budget = context["_redact_budget"] = Budget(settings.API_REDACT_MAX_CHARS, settings.API_REDACT_FIELD_FLOOR)
    return budget


class RedactedFieldsMixin:
    """For a serializer: the fields in `redacted_fields` pass core.pii.redact, and those in
    `pseudonymised_fields` ({field: kind}) become the keyed pseudonyms Label Studio's annotators see
    (`core.pii.pseudonym` of "<source>\x1f<value>"), unless the requesting user holds `raw_permission`."""

    redacted_fields: tuple[str, ...] = ()
    pseudonymised_fields: dict[str, str] = {}
    raw_permission = RAW_TURNS

    def _show_raw(self) -> bool:
        cached = self.context.get("_show_raw")
        if cached is None:
            request = self.context.get("request")
            cached = bool(request is not None and has(request.user, self.raw_permission))
            self.context["_show_raw"] = cached
        return cached

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if self._show_raw():
            return data
        budget = redaction_budget(self.context)
        for f in self.redacted_fields:
            if f in data:
                data[f] = redact_value(data[f], budget)
        from core.pii import pseudonym

        for f, kind in self.pseudonymised_fields.items():
            if isinstance(data.get(f), str) and data[f]:
                data[f] = pseudonym(f"{data.get('source', '')}\x1f{data[f]}", key=settings.PII_PSEUDONYM_KEY.encode(),
                                    kind=kind)
        return data


# --- Django views (pages) ---------------------------------------------------------------------

def require_perm(*perms: str):
    """A page needing one of `perms`: anonymous users go to the login page, others without it get 403."""
    unknown = [p for p in perms if p not in PERMISSIONS]
    assert perms and not unknown, f"require_perm: unknown permission(s) {unknown}"

    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not any(has(request.user, p) for p in perms):
                raise PermissionDenied("your role does not allow this page")
            return view(request, *args, **kwargs)

        wrapped.evalgap_perms = perms
        return wrapped

    return decorate


def public(view):
    """Marks a view that authenticates by other means (the login page; a webhook's shared secret)."""
    view.evalgap_public = True
    return view
