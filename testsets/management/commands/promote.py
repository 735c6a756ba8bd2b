import json

from django.core.management.base import BaseCommand

from testsets.models import PromotionHold
from testsets.services.promotion import testset_promote


class Command(BaseCommand):
    help = ("Promote judged items into the test set's draft under the promotion rules (a verdict exists; "
            "incorrect/partial items have a reference answer; several annotators agree or an admin resolved). "
            "Items held back are listed with the reason.")

    def add_arguments(self, parser):
        parser.add_argument("--testset", default="production")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        result = testset_promote(name=opts["testset"])
        if not opts["json"]:
            for hold in PromotionHold.objects.select_related("item__turn__source").order_by("id")[:50]:
                self.stdout.write(f"held back {hold.item.turn.source.name}:{hold.item.turn.external_id}: {hold.reason}")
        self.stdout.write(json.dumps(result) if opts["json"] else
                          f"promoted {result['promoted']}, held back {result['held_back']}")
