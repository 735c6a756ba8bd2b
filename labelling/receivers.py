from django.dispatch import receiver

from production.dispatch import subject_erased
from taxonomy.signals import failure_modes_merged, taxonomy_changed


@receiver(taxonomy_changed)
def sync_configs_on_taxonomy_change(sender, **kwargs):
    from .tasks import projects_sync_config

    projects_sync_config.delay()


@receiver(failure_modes_merged)
def remap_merged_codes(sender, old: str, new: str, **kwargs):
    from .services.annotations import annotations_remap_code

    annotations_remap_code(old=old, new=new)


@receiver(subject_erased)
def erase_subject_tasks(sender, turn_ids: list[int], **kwargs):
    from .services.erasure import turns_erase

    return turns_erase(turn_ids=turn_ids)
