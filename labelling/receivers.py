from django.dispatch import receiver

from taxonomy.signals import taxonomy_changed


@receiver(taxonomy_changed)
def sync_configs_on_taxonomy_change(sender, **kwargs):
    from .tasks import projects_sync_config

    projects_sync_config.delay()
