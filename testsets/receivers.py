from django.db import transaction
from django.dispatch import receiver

from production.dispatch import subject_erased
from taxonomy.signals import failure_modes_merged

from .models import TestItem, TestSet, TestSetVersion


@receiver(failure_modes_merged)
def remap_draft_items(sender, old: str, new: str, **kwargs):
    """Drafts follow a merge; frozen versions keep the codes they were frozen with. The test sets are
    locked (in id order, as promote and freeze lock one) so no draft is frozen half remapped."""
    with transaction.atomic():
        list(TestSet.objects.select_for_update(of=("self",)).filter(versions__status=TestSetVersion.Status.DRAFT)
             .order_by("id").values_list("id", flat=True))
        changed = []
        for item in TestItem.objects.filter(version__status=TestSetVersion.Status.DRAFT).exclude(failure_modes=[]):
            if old in item.failure_modes:
                item.failure_modes = sorted(set(new if c == old else c for c in item.failure_modes))
                changed.append(item)
        TestItem.objects.bulk_update(changed, ["failure_modes"], batch_size=500)


@receiver(subject_erased)
def count_raw_items_of_erased_subject(sender, turn_keys: list[tuple[str, str]], **kwargs):
    """Redacted versions need nothing; items frozen with raw text cannot change, so they are counted."""
    from .selectors import unredacted_items_of

    return {"items_in_unredacted_versions": unredacted_items_of(turn_keys)}
