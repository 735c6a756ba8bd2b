import json
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from production.readers import FORMATS
from production.services.ingest import IngestError, IngestResult, turns_ingest_path
from production.tasks import signals_detect_after_ingest


class Command(BaseCommand):
    # Django's system checks import every app's URLs (and with them pandas, the LS client ...): seconds
    # of start-up on each run of a command whose time matters. `manage.py check` still runs them.
    requires_system_checks = []
    help = (
        "Read production logs (JSON Lines, CSV or OpenAI messages) into evalgap. Idempotent on "
        "(source, turn id); broken lines are rejected with their line number and kept for inspection."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--source", required=True, help="name of the system these logs come from")
        parser.add_argument("--format", default="auto", choices=FORMATS)
        parser.add_argument("--json", action="store_true", help="end with one JSON summary line")

    result_class = IngestResult  # what one path's ingest returns (import_traces: its own, with more counts)

    def ingest_path(self, path: str, opts: dict) -> IngestResult:
        def progress(total, name):
            # tqdm turns itself off when stderr is not a terminal (disable=None).
            return tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=None, file=sys.stderr)

        return turns_ingest_path(source_name=opts["source"], path=path, fmt=opts["format"], progress_factory=progress)

    def detect_after(self, total: IngestResult) -> None:
        # Detection runs on a worker (in-process without a broker) once for all the paths: ingest only writes.
        signals_detect_after_ingest(total)

    def handle(self, *args, **opts):
        total, failures = self.result_class(), []
        for path in opts["paths"]:
            try:
                result = self.ingest_path(path, opts)
            except IngestError as e:
                # The other paths are still read; the command fails at the end.
                failures.append(str(e))
                self.stderr.write(str(e))
                continue
            total.add(result)
            if not opts["json"]:
                self.stdout.write(f"{path}: {self._line(result)}")
        self.detect_after(total)
        if opts["json"]:
            self.stdout.write(json.dumps(total.as_dict()))
        elif len(opts["paths"]) > 1:
            self.stdout.write(f"total: {self._line(total)}")
        if failures:
            raise CommandError("; ".join(failures))

    @staticmethod
    def _line(r: IngestResult) -> str:
        return (f"read {r.read}, created {r.created}, duplicates {r.duplicates}, "
                f"rejected {r.rejected}, events {r.events}, shadow {r.shadow}")
