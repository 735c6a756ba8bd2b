"""Promotion: judged items become test items in the draft version, under explicit rules.

Rules, in order (the first that fails holds the item back, with that reason):
1. a judgement exists (labelling.selectors.item_judgement): an admin's resolution, or live
   annotations with a verdict whose agreement (share agreeing with the majority) is at least
   PROMOTION_MIN_AGREEMENT where several annotators judged;
2. the verdict can be used: `cannot_judge` is held back (testsets.selectors.promotion_hold_reason);
3. `incorrect` / `partially_correct` items have a reference answer (same place).

A test item keeps the conversation the annotator saw before the query, and like everything it
keeps, as Label Studio showed it: redacted and pseudonymised (testsets.services.privacy).
"""
from __future__ import annotations

import re

import orjson
from django.db import transaction

from labelling import selectors as labelling
from labelling.models import BatchItem
from labelling.selectors import Judgement
from labelling.vocabulary import CORRECT

from ..models import ITEM_FIELDS, PromotionHold, TestItem, TestSet, TestSetVersion
from ..selectors import promotion_hold_reason
from .privacy import item_redact, legacy_item_redact

# Test set names end up in URLs and export file names.
SLUG = re.compile(r"[A-Za-z0-9_-]{1,100}")


def item_key(item: BatchItem) -> str:
    return f"turn:{item.turn.source.name}:{item.turn.external_id}"


def canonical(fields: dict) -> bytes:
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def _item_fields(item: BatchItem, j: Judgement, conversation: list[dict]) -> dict:
    turn = item.turn
    signals = getattr(turn, "signals", None)
    task = getattr(item, "task", None)
    fields = {
        "key": item_key(item),
        "source": turn.source.name,
        "query": turn.query,
        "response": turn.response,
        "reference_answer": j.reference_answer or (turn.response if j.verdict == CORRECT else ""),
        "contexts": turn.contexts or [],
        "conversation": conversation,
        "verdict": j.verdict,
        "failure_modes": sorted(j.failure_modes),
        "stratum": item.stratum,
        "inclusion_probability": item.inclusion_probability,
        "provenance": {
            "turn_id": turn.external_id, "source": turn.source.name, "session_id": turn.session.external_id,
            "user_id": turn.user_id,
            "model": turn.model, "timestamp": turn.timestamp.isoformat() if turn.timestamp else None,
            "label_studio_task_id": task.ls_task_id if task else None,
            "label_studio_project_id": task.project.ls_project_id if task else None,
            "annotation_ids": sorted(a.ls_annotation_id for a in j.annotations),
            "annotators": sorted({a.annotator for a in j.annotations}),
            "taxonomy_versions": sorted({a.taxonomy_version for a in j.annotations if a.taxonomy_version}),
            "resolved_by": j.resolved_by or None,
            "signals": signals.flags() if signals else {},
            "stratum": item.stratum, "inclusion_probability": item.inclusion_probability,
            "generation": turn.metadata.get("generation") if turn.source.name == "generated" else None,
        },
    }
    return item_redact(fields, redact_pii=turn.source.redact_pii)


def testset_lock(*, name: str, create: bool = False) -> TestSet:
    """The test set, its row locked until the transaction ends (promote, freeze and a taxonomy merge's
    remap of drafts all take this lock first, so none of them sees another half done)."""
    if create:
        if not SLUG.fullmatch(name or ""):
            raise ValueError(f"name: {name!r} is not a test set name (letters, digits, - and _)")
        TestSet.objects.get_or_create(name=name)
    return TestSet.objects.select_for_update().get(name=name)


def draft_for(testset: TestSet) -> TestSetVersion:
    draft = TestSetVersion.objects.filter(testset=testset, status=TestSetVersion.Status.DRAFT).first()
    if draft is None:
        last = testset.versions.order_by("-number").first()
        draft = TestSetVersion.objects.create(testset=testset, number=(last.number + 1) if last else 1)
        if last is not None:
            # A new draft starts from the last frozen version: the set grows month by month.
            TestItem.objects.bulk_create(
                [TestItem(version=draft, **fields) for fields in redacted_copy(last)], batch_size=2000)
    elif not draft.redacted:
        # A draft begun before promotion redacted: its items are redacted in place, once.
        for item in draft.items.all():
            fields = legacy_item_redact({f: getattr(item, f) for f in COPY_FIELDS}, {})
            TestItem.objects.filter(pk=item.pk).update(**fields)
        TestSetVersion.objects.filter(pk=draft.pk).update(redacted=True)
        draft.redacted = True
    return draft


def redacted_copy(version: TestSetVersion) -> list[dict]:
    """The items of `version` as a redacted version stores them (a version frozen before redaction
    has its items redacted on the way)."""
    rows = [{f: getattr(i, f) for f in COPY_FIELDS} for i in version.items.all()]
    if version.redacted:
        return rows
    cache: dict[str, bool] = {}
    return [legacy_item_redact(fields, cache) for fields in rows]


COPY_FIELDS = (*ITEM_FIELDS, "content_sha256")


@transaction.atomic
def testset_promote(*, name: str = "production") -> dict:
    """Promote every judged item that meets the rules into the draft; list the others with reasons.

    The test set row is locked for the whole promotion, as freezing locks it: a promotion waits for a
    freeze under way and then writes into the next draft, so a frozen version's items are exactly
    those its sha256 covers."""
    testset = testset_lock(name=name, create=True)
    draft = draft_for(testset)
    existing = dict(draft.items.values_list("key", "content_sha256"))
    promoted = held = 0
    holds, judged, rows, updates = [], [], [], []
    for item, j, reason in labelling.judged_items():
        reason = reason or promotion_hold_reason(j)
        if reason:
            holds.append(PromotionHold(item=item, reason=reason))
            held += 1
        else:
            judged.append((item, j))
    conversations = {}
    for start in range(0, len(judged), 1000):
        conversations.update(labelling.conversations([item for item, _ in judged[start:start + 1000]]))
    for item, j in judged:
        fields = _item_fields(item, j, conversations[item.pk])
        if fields["key"] not in existing:
            rows.append(TestItem(version=draft, **fields))
            promoted += 1
        elif existing[fields["key"]] != fields["content_sha256"]:
            updates.append(fields)
            promoted += 1
    PromotionHold.objects.all().delete()
    PromotionHold.objects.bulk_create(holds, batch_size=1000)
    TestItem.objects.bulk_create(rows, batch_size=1000)
    for fields in updates:
        TestItem.objects.filter(version=draft, key=fields["key"]).update(**fields)
    TestSetVersion.objects.filter(pk=draft.pk).update(item_count=draft.items.count())
    return {"promoted": promoted, "held_back": held}
