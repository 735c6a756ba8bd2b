import json

from django.core.management.base import BaseCommand, CommandError

from testsets.models import PromotionHold
from testsets.services.promotion import testset_promote


class Command(BaseCommand):
    help = ("Promote judged items into the test set's draft under the promotion rules (a verdict exists; "
            "incorrect/partial items have a reference answer; several annotators agree or an admin resolved). "
            "Items held back are listed with the reason.")

    def add_arguments(self, parser):
        parser.add_argument("--testset", default="production")
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--show", type=int, default=10, help="held-back items to list")

    def handle(self, *args, **opts):
        try:
            result = testset_promote(name=opts["testset"])
        except ValueError as e:
            raise CommandError(f"--testset: {e}") from None
        if not opts["json"]:
            holds = PromotionHold.objects.select_related("item__turn__source").order_by("id")
            for hold in holds[:opts["show"]]:
                self.stdout.write(f"held back {hold.item.turn.source.name}:{hold.item.turn.external_id}: {hold.reason}")
            if result["held_back"] > opts["show"]:
                self.stdout.write(f"… and {result['held_back'] - opts['show']} more (admin → Promotion holds)")
        self.stdout.write(json.dumps(result) if opts["json"] else
                          f"promoted {result['promoted']}, held back {result['held_back']}")
