import json

from django.core.management.base import BaseCommand

from production.detector_eval import evaluate, evaluate_example_log, format_example_log, format_report
from production.services.signals import get_detector


class Command(BaseCommand):
    help = ("Measure the rephrase detector: on real human-labelled pairs shipped in rephrase/data (CANARD re-asks "
            "vs follow-ups, HINT3 same-intent queries, CAsT) and on the example CANARD log at its real base rate "
            "(precision, recall, precision at the top 50 / 200), held-out dialogs and intents apart.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        detector = get_detector()
        report = evaluate(detector)
        report["example_log"] = evaluate_example_log(detector=detector)
        if opts["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self.stdout.write(format_report(report) + "\n" + format_example_log(report["example_log"]))
