from django.db import transaction
from django.dispatch import receiver

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
