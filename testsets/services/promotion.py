"""Promotion: judged items become test items in the draft version, under explicit rules.

Rules, in order (the first that fails holds the item back, with that reason):
1. a judgement exists (labelling.selectors.item_judgement): an admin's resolution, or live
   annotations with a verdict whose agreement (share agreeing with the majority) is at least
   PROMOTION_MIN_AGREEMENT where several annotators judged;
2. the verdict can be used: `cannot_judge` is held back (testsets.selectors.promotion_hold_reason);
3. `incorrect` / `partially_correct` items have a reference answer (same place).

A test item keeps the conversation the annotator saw before the query.
"""
from __future__ import annotations

import hashlib

import orjson
from django.db import transaction

from labelling import selectors as labelling
from labelling.models import BatchItem
from labelling.selectors import Judgement
from labelling.vocabulary import CORRECT

from ..models import ITEM_FIELDS, PromotionHold, TestItem, TestSet, TestSetVersion
from ..selectors import promotion_hold_reason


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
    fields["content_sha256"] = hashlib.sha256(canonical(fields)).hexdigest()
    return fields


def draft_for(testset: TestSet) -> TestSetVersion:
    draft = TestSetVersion.objects.filter(testset=testset, status=TestSetVersion.Status.DRAFT).first()
    if draft is None:
        last = testset.versions.order_by("-number").first()
        draft = TestSetVersion.objects.create(testset=testset, number=(last.number + 1) if last else 1)
        if last is not None:
            # A new draft starts from the last frozen version: the set grows month by month.
            TestItem.objects.bulk_create([
                TestItem(version=draft, **{f: getattr(i, f) for f in COPY_FIELDS}) for i in last.items.all()
            ], batch_size=2000)
    return draft


COPY_FIELDS = (*ITEM_FIELDS, "content_sha256")


@transaction.atomic
def testset_promote(*, name: str = "production") -> dict:
    """Promote every judged item that meets the rules into the draft; list the others with reasons."""
    testset, _ = TestSet.objects.get_or_create(name=name)
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
