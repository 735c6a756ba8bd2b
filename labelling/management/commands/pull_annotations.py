import json

from django.core.management.base import BaseCommand, CommandError

from labelling.client import LabelStudioError, LabelStudioUnavailable
from labelling.services.annotations import annotations_pull


class Command(BaseCommand):
    help = "Reconcile annotations from Label Studio's export (created, updated, deleted). Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            result = annotations_pull()
        except (LabelStudioError, LabelStudioUnavailable) as e:
            raise CommandError(f"Label Studio: {e}") from None
        self.stdout.write(json.dumps(result) if opts["json"] else ", ".join(f"{k} {v}" for k, v in result.items()))
