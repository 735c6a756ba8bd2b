from django.apps import AppConfig


class LabellingConfig(AppConfig):
    name = "labelling"
    verbose_name = "Labelling (Label Studio)"

    def ready(self):
        from . import receivers  # noqa: F401  (listens for taxonomy changes)
