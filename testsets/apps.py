from django.apps import AppConfig


class TestsetsConfig(AppConfig):
    name = "testsets"
    verbose_name = "Test sets"

    def ready(self):
        from . import receivers  # noqa: F401  (follows taxonomy merges)
