import json

from django.core.management.base import BaseCommand

from production.detector_eval import evaluate, format_report


class Command(BaseCommand):
    help = ("Measure the rephrase detector on real human-labelled data shipped in rephrase/data "
            "(CANARD re-asks vs follow-ups, HINT3 same-intent queries): precision, recall, F1 per set.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        report = evaluate()
        self.stdout.write(json.dumps(report) if opts["json"] else format_report(report))
