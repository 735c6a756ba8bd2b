from django.apps import AppConfig


class GateConfig(AppConfig):
    name = "gate"
    verbose_name = "release gate"
