import json

from django.core.management.base import BaseCommand, CommandError

from labelling.client import LabelStudioError, LabelStudioUnavailable
from labelling.models import LabellingBatch
from labelling.services.push import batch_push


class Command(BaseCommand):
    help = ("Import a batch's items into the Label Studio project (created when missing). Safe to re-run and to "
            "resume after a crash: exactly one task per item. Default: the latest batch.")

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=None, metavar="ID")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        batch_id = opts["batch"]
        if batch_id is None:
            batch_id = LabellingBatch.objects.order_by("-id").values_list("id", flat=True).first()
            if batch_id is None:
                raise CommandError("no labelling batch yet: run select_for_labelling first")
        elif not LabellingBatch.objects.filter(pk=batch_id).exists():
            raise CommandError(f"--batch: no batch {batch_id}")
        try:
            result = batch_push(batch_id=batch_id)
        except (LabelStudioError, LabelStudioUnavailable) as e:
            raise CommandError(f"Label Studio: {e}") from None
        if opts["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"project {result['project_id']}: pushed {result['pushed']}, "
                              f"already present {result['already_present']}")
