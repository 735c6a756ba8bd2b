from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def _sync_roles(sender, **kwargs):
    # post_migrate is sent once per app with models; the roles name permissions of every app, so
    # they are synced once, after the last app's own permissions exist.
    with_models = [c for c in apps.get_app_configs() if c.models_module is not None]
    if with_models and sender.label == with_models[-1].label:
        from .roles import roles_sync

        roles_sync()


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "evalgap core"

    def ready(self):
        post_migrate.connect(_sync_roles, dispatch_uid="core.roles_sync")
