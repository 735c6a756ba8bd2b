"""What a test item stores: the turn as Label Studio showed it to the annotators, never raw text.

Text goes through the one redactor (core.pii) when the item's source redacts (Source.redact_pii,
the switch Label Studio tasks obey); session, user and annotator ids are always the keyed pseudonyms
Label Studio and the API show (core.pii.pseudonym of "<source>\\x1f<value>"), and a turn id that
carries personal data becomes its pseudonymous evalgap_id, in the item's key too. Raw text stays
only in production turns (docs/privacy.md).

`item_redact` is used by promotion (on the raw fields it builds), by a new draft copied from a
version frozen before redaction, and by `redact_version`; it must not run twice on the same item
(a pseudonym of a pseudonym is another pseudonym): a version's `redacted` flag says it has run.
"""
from __future__ import annotations

import hashlib
from typing import Callable

from django.conf import settings

from core.pii import pseudonym, redact, redact_obj
from labelling.services.push import evalgap_id
from production.models import Source, Turn


def _key() -> bytes:
    return settings.PII_PSEUDONYM_KEY.encode()


def _same(value):
    return value


def source_redacts(name: str, cache: dict[str, bool] | None = None) -> bool:
    """Whether a source's text is redacted for Label Studio; a source no longer known redacts."""
    if cache is not None and name in cache:
        return cache[name]
    redacts = Source.objects.filter(name=name).values_list("redact_pii", flat=True).first()
    redacts = True if redacts is None else redacts
    if cache is not None:
        cache[name] = redacts
    return redacts


def user_pseudonym(*, source: str, user_id: str) -> str:
    """The pseudonym Label Studio tasks and the turns API show for a production user."""
    return pseudonym(f"{source}\x1f{user_id}", key=_key(), kind="user") if user_id else ""


def item_redact(fields: dict, *, redact_pii: bool) -> dict:
    """A copy of an item's fields (testsets.models.ITEM_FIELDS, with `content_sha256` recomputed)
    holding redacted, pseudonymised text; `fields` are the raw ones promotion builds from a turn."""
    from .promotion import canonical

    clean: Callable = redact if redact_pii else _same
    clean_obj: Callable = redact_obj if redact_pii else _same
    source = fields["source"]
    key = _key()
    out = dict(fields)
    out.pop("content_sha256", None)
    prov = dict(fields.get("provenance") or {})
    raw_turn_id = prov.get("turn_id")
    if raw_turn_id:
        shown_id = evalgap_id(source=source, external_id=str(raw_turn_id), redact_pii=redact_pii)
        if out["key"] == f"turn:{source}:{raw_turn_id}":
            out["key"] = f"turn:{source}:{shown_id}"
        prov["turn_id"] = shown_id
    for f in ("query", "response", "reference_answer"):
        out[f] = clean(out.get(f) or "")
    out["contexts"] = clean_obj(out.get("contexts") or [])
    out["conversation"] = [{**m, "content": clean(m.get("content") or "")} for m in out.get("conversation") or []]
    if prov.get("session_id"):
        prov["session_id"] = pseudonym(f"{source}\x1f{prov['session_id']}", key=key, kind="session")
    if "user_id" in prov:
        prov["user_id"] = user_pseudonym(source=source, user_id=prov["user_id"] or "")
    # Annotators (often e-mail addresses) by the pseudonym the annotations API shows them under.
    prov["annotators"] = sorted(pseudonym(f"{source}\x1f{a}", key=key, kind="annotator")
                                for a in prov.get("annotators") or [] if a)
    if prov.get("resolved_by"):
        prov["resolved_by"] = pseudonym(f"{source}\x1f{prov['resolved_by']}", key=key, kind="annotator")
    if prov.get("model"):
        prov["model"] = clean(prov["model"])
    if prov.get("generation"):
        prov["generation"] = clean_obj(prov["generation"])
    out["provenance"] = prov
    out["content_sha256"] = hashlib.sha256(canonical({k: v for k, v in out.items() if k != "content_sha256"})
                                           ).hexdigest()
    return out


def legacy_item_redact(fields: dict, cache: dict[str, bool]) -> dict:
    """`item_redact` for an item frozen before redaction: its provenance has no user id, so the user
    is looked up by its turn (when the turn is still there) to give the item its user pseudonym."""
    prov = dict(fields.get("provenance") or {})
    if "user_id" not in prov and prov.get("turn_id"):
        turns = Turn.objects.filter(source__name=fields["source"], external_id=prov["turn_id"])
        if prov.get("session_id"):
            turns = turns.filter(session__external_id=prov["session_id"])
        prov["user_id"] = turns.values_list("user_id", flat=True).first() or ""
    return item_redact({**fields, "provenance": prov}, redact_pii=source_redacts(fields["source"], cache))
