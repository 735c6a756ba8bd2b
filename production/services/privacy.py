"""Erasure and retention of raw production text (docs/privacy.md).

- `subject_erase`: a user's turns, their events and mirrored answers lose their raw text, and ids that
  carry personal data become keyed pseudonyms; the apps above are told (production.dispatch.subject_erased)
  and erase what they own; a tombstone records a keyed hash of the subject, who asked, when and how much.
- `retention_apply`: turns older than RAW_RETENTION_DAYS (by timestamp, else by when they arrived) lose
  their raw text; ids, signals' flags, labels and rates stay.

Both are idempotent (work is picked by what still holds raw text) and write a PrivacyAudit row each run.
Frozen test-set versions hold only redacted text, so erasure leaves them valid (testsets counts how
many of their items came from erased subjects).
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.pii import detect, pseudonym

from ..dispatch import subject_erased
from ..models import ErasureTombstone, Event, MirroredAnswer, PrivacyAudit, Session, Turn, TurnSignals

CHUNK = 2000


def _key() -> bytes:
    return settings.PII_PSEUDONYM_KEY.encode()


def subject_hash(user_id: str) -> str:
    """A keyed hash of a subject: a tombstone holds no raw identity, and without the key the hash
    cannot be checked against a guessed address."""
    return hmac.new(_key(), f"subject\x1f{user_id}".encode(), hashlib.sha256).hexdigest()


def _no_text(value):
    """Numbers, booleans and structure kept; every string (keys stay: they are our names) emptied."""
    if isinstance(value, str):
        return ""
    if isinstance(value, dict):
        return {k: _no_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_text(v) for v in value]
    return value


def _kept_metadata(metadata) -> dict:
    # metadata.release says which release served the turn: rates per release read it.
    release = (metadata or {}).get("release") if isinstance(metadata, dict) else None
    return {"release": release} if isinstance(release, str) else {}


def _drop_raw(turn_ids: list[int], now) -> dict:
    """Raw text of these turns, their events, mirrored answers and signal evidence: gone."""
    counts = {"turns": 0, "events": 0, "mirrored_answers": 0}
    for start in range(0, len(turn_ids), CHUNK):
        ids = turn_ids[start:start + CHUNK]
        turns = list(Turn.objects.filter(pk__in=ids).only("pk", "metadata"))
        for t in turns:
            t.query, t.response, t.contexts, t.metadata, t.raw_dropped_at = "", "", [], _kept_metadata(t.metadata), now
        Turn.objects.bulk_update(turns, ["query", "response", "contexts", "metadata", "raw_dropped_at"],
                                 batch_size=500)
        counts["turns"] += len(turns)
        counts["events"] += Event.objects.filter(turn_id__in=ids).update(corrected_response="", actor="", reason="",
                                                                         payload={})
        counts["mirrored_answers"] += MirroredAnswer.objects.filter(turn_id__in=ids).update(response="")
        signals = list(TurnSignals.objects.filter(turn_id__in=ids).only("turn_id", "evidence"))
        for s in signals:
            s.corrected_response, s.evidence = "", _no_text(s.evidence)
        # bulk_update leaves detected_at (auto_now) as it was: the flags were not recomputed.
        TurnSignals.objects.bulk_update(signals, ["corrected_response", "evidence"], batch_size=500)
    return counts


def _pseudonymise_ids(turns: list[tuple[int, int, str, int]]) -> int:
    """Turn and session ids that carry personal data ("jane@example.com-1") become the keyed pseudonym
    Label Studio and test items show for them; events and mirrored answers follow their turn's id."""
    key, changed = _key(), 0
    names = dict(Turn.objects.filter(pk__in=[t[0] for t in turns]).values_list("pk", "source__name"))
    for pk, source_id, external_id, _ in turns:
        if external_id and detect(external_id):
            new = pseudonym(f"{names[pk]}\x1f{external_id}", key=key, kind="turn")
            Turn.objects.filter(pk=pk).update(external_id=new)
            Event.objects.filter(source_id=source_id, turn_external_id=external_id).update(turn_external_id=new)
            MirroredAnswer.objects.filter(source_id=source_id, turn_external_id=external_id).update(turn_external_id=new)
            changed += 1
    for session in Session.objects.filter(pk__in={t[3] for t in turns}).select_related("source"):
        if detect(session.external_id):
            session.external_id = pseudonym(f"{session.source.name}\x1f{session.external_id}", key=key,
                                            kind="session")
            session.save(update_fields=["external_id"])
            changed += 1
    return changed


def _merge(total: dict, more: dict) -> dict:
    out = dict(total)
    for k, v in more.items():
        out[k] = out.get(k, 0) + v
    return out


@transaction.atomic
def subject_erase(*, user_id: str, actor=None) -> dict:
    """Erase one production user (every source): see the module docstring. Returns the counts of this
    run (all 0 when there was nothing left to erase) and the subject's hash."""
    user_id = (user_id or "").strip()
    if not user_id:
        raise ValueError("user_id: give the production user id to erase (as the log sent it)")
    digest = subject_hash(user_id)
    rows = list(Turn.objects.filter(user_id=user_id).values_list("pk", "source_id", "external_id", "session_id",
                                                                "source__name"))
    turn_ids = [r[0] for r in rows]
    pseudonyms = sorted({pseudonym(f"{r[4]}\x1f{user_id}", key=_key(), kind="user") for r in rows})
    counts = _drop_raw(turn_ids, timezone.now())
    counts["ids_pseudonymised"] = _pseudonymise_ids([r[:4] for r in rows])
    Turn.objects.filter(pk__in=turn_ids).update(user_id="")
    for _, reply in subject_erased.send(sender=subject_erase, turn_ids=turn_ids, user_pseudonyms=pseudonyms,
                                        turn_keys=[(r[4], r[2]) for r in rows]):
        counts = _merge(counts, reply or {})
    tombstone, created = ErasureTombstone.objects.select_for_update().get_or_create(subject_sha256=digest)
    if created or turn_ids:  # a re-run with nothing left to erase leaves the tombstone as it was
        tombstone.user_pseudonyms = sorted(set(tombstone.user_pseudonyms) | set(pseudonyms))
        tombstone.counts = _merge(tombstone.counts, counts)
        if getattr(actor, "pk", None):
            tombstone.erased_by = actor
        tombstone.save()
    PrivacyAudit.objects.create(action=PrivacyAudit.Action.ERASE_SUBJECT, actor=getattr(actor, "username", "") or "",
                                subject_sha256=digest, counts=counts)
    return {"subject_sha256": digest, **counts}


def retention_cutoff(now=None):
    days = settings.RAW_RETENTION_DAYS
    return None if days is None else (now or timezone.now()) - timedelta(days=days)


@transaction.atomic
def retention_apply(*, actor=None, now=None) -> dict:
    """Drop the raw text of turns older than RAW_RETENTION_DAYS (None: keep forever, drop nothing)."""
    now = now or timezone.now()
    cutoff = retention_cutoff(now)
    counts = {"turns": 0, "events": 0, "mirrored_answers": 0}
    if cutoff is not None:
        turn_ids = list(Turn.objects.filter(raw_dropped_at__isnull=True)
                        .annotate(at=Coalesce("timestamp", "ingested_at")).filter(at__lt=cutoff)
                        .values_list("pk", flat=True))
        counts = _drop_raw(turn_ids, now)
    PrivacyAudit.objects.create(action=PrivacyAudit.Action.APPLY_RETENTION, actor=getattr(actor, "username", "") or "",
                                counts={**counts, "retention_days": settings.RAW_RETENTION_DAYS,
                                        "cutoff": cutoff.isoformat() if cutoff else None})
    return {**counts, "retention_days": settings.RAW_RETENTION_DAYS, "cutoff": cutoff.isoformat() if cutoff else None}
