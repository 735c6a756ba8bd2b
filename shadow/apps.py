from django.apps import AppConfig


class ShadowConfig(AppConfig):
    name = "shadow"
    verbose_name = "shadow evaluation"

    def ready(self):
        from . import receivers  # noqa: F401  (listens for erased subjects)
