import json
import sys

from django.core.management.base import BaseCommand
from tqdm import tqdm

from production.models import Session
from production.services.signals import signals_detect


class Command(BaseCommand):
    # As for ingest: the system checks import every app's URLs (seconds of start-up per run).
    requires_system_checks = []
    help = ("Set each turn's implicit signals (rephrased, followed_up, abandoned, copied, thumbs, escalated, "
            "human_override) from what happened after its answer. Incremental: only changed sessions.")

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true", help="re-detect every session, not only changed ones")
        parser.add_argument("--json", action="store_true", help="end with one JSON line of counts per signal")

    def handle(self, *args, **opts):
        total = Session.objects.count() if opts["full"] else Session.objects.filter(dirty=True).count()
        with tqdm(total=total, unit="session", disable=None, file=sys.stderr) as bar:
            result = signals_detect(full=opts["full"], progress=bar.update)
        counts = result.as_dict()
        if opts["json"]:
            self.stdout.write(json.dumps(counts))
        else:
            self.stdout.write(", ".join(f"{k} {v}" for k, v in counts.items()))
