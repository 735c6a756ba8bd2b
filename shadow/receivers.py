from django.dispatch import receiver

from production.dispatch import subject_erased


@receiver(subject_erased)
def erase_subject_pairs(sender, turn_ids: list[int], **kwargs):
    from .services.erasure import pairs_erase

    return pairs_erase(turn_ids=turn_ids)
