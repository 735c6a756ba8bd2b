from django.dispatch import receiver

from taxonomy.signals import failure_modes_merged

from .models import TestItem, TestSetVersion


@receiver(failure_modes_merged)
def remap_draft_items(sender, old: str, new: str, **kwargs):
    """Drafts follow a merge; frozen versions keep the codes they were frozen with."""
    changed = []
    for item in TestItem.objects.filter(version__status=TestSetVersion.Status.DRAFT).exclude(failure_modes=[]):
        if old in item.failure_modes:
            item.failure_modes = sorted(set(new if c == old else c for c in item.failure_modes))
            changed.append(item)
    TestItem.objects.bulk_update(changed, ["failure_modes"], batch_size=500)
