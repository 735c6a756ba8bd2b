"""Promotion: judged items become test items in the draft version, under explicit rules.

Rules, in order (the first that fails holds the item back, with that reason):
1. a verdict exists (an admin resolution, or at least one annotation that is not deleted/cancelled);
2. the verdict can be used: `cannot_judge` is held back;
3. where several annotators judged, their agreement on the verdict (share agreeing with the
   majority) is at least PROMOTION_MIN_AGREEMENT — or an admin resolved the item;
4. `incorrect` / `partially_correct` items have a reference answer.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.db import transaction

from labelling.models import Annotation, BatchItem
from taxonomy.selectors import resolve_code

from ..models import PromotionHold, TestItem, TestSet, TestSetVersion

NEEDS_REFERENCE = ("incorrect", "partially_correct")
# Test set names end up in URLs and export file names.
SLUG = re.compile(r"[A-Za-z0-9_-]{1,100}")


@dataclass
class Judgement:
    verdict: str
    failure_modes: list[str]
    reference_answer: str
    annotations: list[Annotation]
    resolved_by: str = ""


def item_key(item: BatchItem) -> str:
    return f"turn:{item.turn.source.name}:{item.turn.external_id}"


def judge(item: BatchItem, annotations: list[Annotation]) -> tuple[Judgement | None, str]:
    """The item's judgement, or the reason it cannot be promoted."""
    resolution = getattr(item, "resolution", None)
    if resolution is not None:
        j = Judgement(resolution.verdict, [resolve_code(c) for c in resolution.failure_modes],
                      resolution.reference_answer, annotations, resolved_by=resolution.resolved_by.username)
    else:
        usable = [a for a in annotations if a.verdict]
        if not usable:
            return None, "no verdict yet"
        votes = Counter(a.verdict for a in usable)
        verdict, n = votes.most_common(1)[0]
        if len(usable) > 1:
            agreement = n / len(usable)
            if list(votes.values()).count(n) > 1 or agreement < settings.PROMOTION_MIN_AGREEMENT:
                return None, (f"annotators disagree on the verdict ({dict(votes)}; agreement {agreement:.2f} < "
                              f"{settings.PROMOTION_MIN_AGREEMENT}): an admin must resolve it")
        agreeing = sorted((a for a in usable if a.verdict == verdict), key=lambda a: (a.ls_updated_at is None,
                                                                                       a.ls_updated_at), reverse=True)
        modes = list(dict.fromkeys(resolve_code(c) for a in agreeing for c in a.failure_modes))
        reference = next((a.reference_answer for a in agreeing if a.reference_answer.strip()), "")
        j = Judgement(verdict, modes, reference, annotations)
    if j.verdict == "cannot_judge":
        return None, "verdict is cannot_judge"
    if j.verdict in NEEDS_REFERENCE and not j.reference_answer.strip():
        return None, f"verdict is {j.verdict} but there is no reference answer"
    return j, ""


def canonical(fields: dict) -> bytes:
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def _item_fields(item: BatchItem, j: Judgement) -> dict:
    turn = item.turn
    signals = getattr(turn, "signals", None)
    task = getattr(item, "task", None)
    fields = {
        "key": item_key(item),
        "source": turn.source.name,
        "query": turn.query,
        "response": turn.response,
        "reference_answer": j.reference_answer or (turn.response if j.verdict == "correct" else ""),
        "contexts": turn.contexts or [],
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
            TestItem.objects.bulk_create([
                TestItem(version=draft, **{f: getattr(i, f) for f in COPY_FIELDS}) for i in last.items.all()
            ], batch_size=2000)
    return draft


COPY_FIELDS = ("key", "source", "query", "response", "reference_answer", "contexts", "conversation", "verdict",
               "failure_modes", "stratum", "inclusion_probability", "provenance", "content_sha256")


@transaction.atomic
def testset_promote(*, name: str = "production") -> dict:
    """Promote every judged item that meets the rules into the draft; list the others with reasons.

    The test set row is locked for the whole promotion, as freezing locks it: a promotion waits for a
    freeze under way and then writes into the next draft, so a frozen version's items are exactly
    those its sha256 covers."""
    testset = testset_lock(name=name, create=True)
    draft = draft_for(testset)
    existing = dict(draft.items.values_list("key", "content_sha256"))
    annotations: dict[int, list[Annotation]] = {}
    for a in Annotation.objects.filter(deleted=False, was_cancelled=False).order_by("id"):
        annotations.setdefault(a.item_id, []).append(a)
    items = (BatchItem.objects.filter(pk__in=annotations.keys()) | BatchItem.objects.filter(resolution__isnull=False))
    promoted = held = 0
    holds, rows, updates = [], [], []
    for item in items.distinct().select_related("turn__source", "turn__session", "turn__signals", "task__project",
                                                "resolution__resolved_by"):
        j, reason = judge(item, annotations.get(item.pk, []))
        if j is None:
            holds.append(PromotionHold(item=item, reason=reason))
            held += 1
            continue
        fields = _item_fields(item, j)
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
