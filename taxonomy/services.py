"""Every change to the taxonomy is one function here: it validates, applies, records who, when
and why (TaxonomyChange), and makes a new TaxonomyVersion. Only admins reach these (permission
`taxonomy.govern_taxonomy`); the views and the admin check it."""
from __future__ import annotations

import re

from django.db import transaction
from django.utils import timezone

from .models import FailureMode, Proposal, TaxonomyChange, TaxonomyVersion
from .selectors import failure_mode_tree
from .signals import failure_modes_merged, taxonomy_changed


class TaxonomyError(ValueError):
    """A change that cannot be made; the message names the field."""


def _actor(user) -> str:
    return getattr(user, "username", None) or str(user or "system")


def _record(*, action: str, code: str, user, reason: str, details: dict | None = None) -> TaxonomyVersion:
    last = TaxonomyVersion.objects.select_for_update().order_by("-number").first()
    version = TaxonomyVersion.objects.create(number=(last.number + 1) if last else 1, snapshot=failure_mode_tree(),
                                             reason=reason, created_by=_actor(user))
    TaxonomyChange.objects.create(action=action, code=code, details=details or {}, reason=reason,
                                  actor=_actor(user), version=version)
    transaction.on_commit(lambda: taxonomy_changed.send(sender=FailureMode))
    return version


def _mode(code: str) -> FailureMode:
    try:
        return FailureMode.objects.get(code=code)
    except FailureMode.DoesNotExist:
        raise TaxonomyError(f"code: no failure mode {code!r}") from None


@transaction.atomic
def failure_mode_create(*, code: str, name: str, description: str = "", parent_code: str | None = None,
                        user=None, reason: str = "") -> FailureMode:
    if FailureMode.objects.filter(code=code).exists():
        raise TaxonomyError(f"code: {code!r} exists or existed once; codes are never reused")
    parent = _mode(parent_code) if parent_code else None
    mode = FailureMode(code=code, name=name, description=description, parent=parent)
    try:
        mode.full_clean()
    except Exception as e:
        raise TaxonomyError(str(e)) from None
    mode.save()
    _record(action="create", code=code, user=user, reason=reason, details={"name": name, "parent": parent_code})
    return mode


@transaction.atomic
def failure_mode_rename(*, code: str, name: str, description: str | None = None, user=None,
                        reason: str = "") -> FailureMode:
    """A new display name (and description); the code, and so every label, stays."""
    mode = _mode(code)
    old = {"name": mode.name, "description": mode.description}
    mode.name = name
    if description is not None:
        mode.description = description
    mode.save()
    _record(action="rename", code=code, user=user, reason=reason, details={"from": old, "to": name})
    return mode


def _ancestors(mode: FailureMode):
    while mode is not None:
        yield mode
        mode = mode.parent


@transaction.atomic
def failure_mode_reparent(*, code: str, parent_code: str | None, user=None, reason: str = "") -> FailureMode:
    mode = _mode(code)
    parent = _mode(parent_code) if parent_code else None
    if parent is not None and any(a.pk == mode.pk for a in _ancestors(parent)):
        raise TaxonomyError(f"parent: {parent_code!r} is {code!r} or below it")
    old = mode.parent.code if mode.parent else None
    mode.parent = parent
    mode.save()
    _record(action="reparent", code=code, user=user, reason=reason, details={"from": old, "to": parent_code})
    return mode


@transaction.atomic
def failure_mode_retire(*, code: str, user=None, reason: str = "") -> FailureMode:
    """No longer offered to annotators; the row and its code stay, so old labels still resolve."""
    mode = _mode(code)
    mode.active = False
    mode.save()
    _record(action="retire", code=code, user=user, reason=reason)
    return mode


@transaction.atomic
def failure_mode_merge(*, code: str, into: str, user=None, reason: str = "") -> FailureMode:
    """`code` is folded into `into`: it is retired, and labelled items are re-mapped to `into`."""
    if code == into:
        raise TaxonomyError("into: a mode cannot be merged into itself")
    mode, target = _mode(code), _mode(into)
    if not target.active:
        raise TaxonomyError(f"into: {into!r} is retired")
    mode.active = False
    mode.merged_into = target
    mode.save()
    # Children of the merged mode move up to the survivor.
    FailureMode.objects.filter(parent=mode).update(parent=target)
    FailureMode.objects.filter(merged_into=mode).update(merged_into=target)
    failure_modes_merged.send(sender=FailureMode, old=code, new=into)
    _record(action="merge", code=code, user=user, reason=reason, details={"into": into})
    return target


_WORDS = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an the of to in on for and or is are was were be with by it its this that answer answers "
                  "model bot does do did".split())


def _key(text: str) -> frozenset:
    text = text.lower().replace("n't", " not").replace("n’t", " not")
    return frozenset(w for w in _WORDS.findall(text) if w not in _STOP)


def _same_thing(a: frozenset, b: frozenset) -> bool:
    # Proposals are short phrases: two that share most of their content words say the same thing.
    return bool(a and b) and len(a & b) / len(a | b) >= 0.6


@transaction.atomic
def proposal_submit(*, text: str, ref: str) -> Proposal | None:
    """Queue a proposed new mode for review, grouped with a pending proposal saying the same thing.
    Idempotent per ref: the same annotation submitted twice counts once."""
    text = text.strip()
    if not text:
        return None
    words = _key(text)
    for p in Proposal.objects.select_for_update().filter(status=Proposal.Status.PENDING):
        if ref in p.refs:
            return p
        if _same_thing(words, frozenset(p.key.split())):
            p.refs = [*p.refs, ref]
            if text not in p.wordings:
                p.wordings = [*p.wordings, text]
            p.save(update_fields=["refs", "wordings"])
            return p
    return Proposal.objects.create(text=text, key=" ".join(sorted(words))[:300], refs=[ref], wordings=[text])


@transaction.atomic
def proposal_approve(*, proposal: Proposal, code: str, name: str, description: str = "",
                     parent_code: str | None = None, user=None, reason: str = "") -> FailureMode:
    if proposal.status != Proposal.Status.PENDING:
        raise TaxonomyError(f"status: proposal {proposal.pk} was already {proposal.status}")
    mode = failure_mode_create(code=code, name=name, description=description or proposal.text,
                               parent_code=parent_code, user=user, reason=reason or f"proposal {proposal.pk}")
    Proposal.objects.filter(pk=proposal.pk).update(status=Proposal.Status.APPROVED, created_mode=mode,
                                                   decided_by=_actor(user), decision_reason=reason,
                                                   decided_at=timezone.now())
    return mode


@transaction.atomic
def proposal_reject(*, proposal: Proposal, reason: str, user=None) -> Proposal:
    if not reason.strip():
        raise TaxonomyError("reason: a rejection needs a reason")
    if proposal.status != Proposal.Status.PENDING:
        raise TaxonomyError(f"status: proposal {proposal.pk} was already {proposal.status}")
    proposal.status = Proposal.Status.REJECTED
    proposal.decided_by, proposal.decision_reason, proposal.decided_at = _actor(user), reason, timezone.now()
    proposal.save()
    TaxonomyChange.objects.create(action="reject_proposal", code="", details={"proposal": proposal.pk,
                                                                             "text": proposal.text},
                                  reason=reason, actor=_actor(user), version=current_version_row())
    return proposal


def current_version_row() -> TaxonomyVersion:
    version = TaxonomyVersion.objects.order_by("-number").first()
    if version is None:
        version = TaxonomyVersion.objects.create(number=1, snapshot=failure_mode_tree(), reason="initial taxonomy",
                                                 created_by="system")
    return version


def failure_mode_update(*, mode: FailureMode, user=None, reason: str = "", **fields) -> FailureMode:
    """The admin form's edit, as the matching governance actions."""
    if "parent" in fields:
        parent = fields.pop("parent")
        failure_mode_reparent(code=mode.code, parent_code=parent.code if parent else None, user=user, reason=reason)
    if fields.pop("active", True) is False:
        failure_mode_retire(code=mode.code, user=user, reason=reason)
    if "name" in fields or "description" in fields:
        failure_mode_rename(code=mode.code, name=fields.get("name", mode.name),
                            description=fields.get("description"), user=user, reason=reason)
    mode.refresh_from_db()
    return mode


def taxonomy_action(*, user, action: str, reason: str = "", **d) -> dict:
    """One review action by name, dispatched to its function above (the API and the web UI both
    post actions as form data). Returns {"code": the mode's code}, or {} for a rejected proposal."""
    parent = d.get("parent") or None
    if action == "create":
        mode = failure_mode_create(code=d["code"], name=d["name"], description=d.get("description", ""),
                                   parent_code=parent, user=user, reason=reason)
    elif action == "rename":
        mode = failure_mode_rename(code=d["code"], name=d["name"], description=d.get("description"),
                                   user=user, reason=reason)
    elif action == "reparent":
        mode = failure_mode_reparent(code=d["code"], parent_code=parent, user=user, reason=reason)
    elif action == "retire":
        mode = failure_mode_retire(code=d["code"], user=user, reason=reason)
    elif action == "merge":
        mode = failure_mode_merge(code=d["code"], into=d["into"], user=user, reason=reason)
    elif action == "approve":
        mode = proposal_approve(proposal=_proposal(d["proposal"]), code=d["code"], name=d["name"],
                                description=d.get("description", ""), parent_code=parent, user=user, reason=reason)
    else:  # reject
        proposal_reject(proposal=_proposal(d["proposal"]), reason=reason, user=user)
        return {}
    return {"code": mode.code}


def _proposal(pk: int) -> Proposal:
    try:
        return Proposal.objects.get(pk=pk)
    except Proposal.DoesNotExist:
        raise TaxonomyError(f"proposal: no proposal {pk}") from None
