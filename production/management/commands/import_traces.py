import json

from django.core.management.base import BaseCommand, CommandError

from production.services.ingest import IngestError, IngestResult
from production.services.traces import TraceIngestResult, traces_import_path
from production.tasks import signals_detect_after_ingest
from production.traces.importers import IMPORTERS


class Command(BaseCommand):
    requires_system_checks = []  # as `ingest`: no URL conf import on each run
    help = (
        "Import another tool's trace export (Langfuse trace/observation JSON, LangSmith runs JSON/JSONL, Phoenix "
        "span dataframe parquet) as turns: one turn per trace, through the production-log contract; what "
        "cannot be mapped is rejected with its record number. Idempotent on (source, trace id)."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--format", required=True, choices=tuple(IMPORTERS), help="whose export the files are")
        parser.add_argument("--source", required=True, help="name of the system these traces come from")
        parser.add_argument("--json", action="store_true", help="end with one JSON summary line")

    def handle(self, *args, **opts):
        total, failures = TraceIngestResult(), []
        for path in opts["paths"]:
            try:
                result = traces_import_path(source_name=opts["source"], path=path, fmt=opts["format"])
            except IngestError as e:
                failures.append(str(e))  # the other files are still read; the command fails at the end
                self.stderr.write(str(e))
                continue
            total.add(result)
            if not opts["json"]:
                self.stdout.write(f"{path}: {self._line(result)}")
        signals_detect_after_ingest(IngestResult(created=total.created + total.updated, events=total.events))
        if opts["json"]:
            self.stdout.write(json.dumps(total.as_dict()))
        elif len(opts["paths"]) > 1:
            self.stdout.write(f"total: {self._line(total)}")
        if failures:
            raise CommandError("; ".join(failures))

    @staticmethod
    def _line(r: TraceIngestResult) -> str:
        return (f"spans read {r.read}, turns created {r.created}, duplicates {r.duplicates}, rejected {r.rejected}, "
                f"updated {r.updated}, traces waiting for their root span {r.pending}")
