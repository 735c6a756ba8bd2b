from production.management.commands.ingest import Command as IngestCommand
from production.services.ingest import IngestResult
from production.services.traces import TraceIngestResult, traces_import_path
from production.tasks import signals_detect_after_ingest
from production.traces.importers import IMPORTERS


class Command(IngestCommand):
    """`ingest`'s loop over paths, its failures and its summary; each path read as a trace export."""

    help = (
        "Import another tool's trace export (Langfuse trace/observation JSON, LangSmith runs JSON/JSONL, Phoenix "
        "span dataframe parquet) as turns: one turn per trace, through the production-log contract; what "
        "cannot be mapped is rejected with its record number. Idempotent on (source, trace id)."
    )
    result_class = TraceIngestResult

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--format", required=True, choices=tuple(IMPORTERS), help="whose export the files are")
        parser.add_argument("--source", required=True, help="name of the system these traces come from")
        parser.add_argument("--json", action="store_true", help="end with one JSON summary line")

    def ingest_path(self, path: str, opts: dict) -> TraceIngestResult:
        return traces_import_path(source_name=opts["source"], path=path, fmt=opts["format"])

    def detect_after(self, total: TraceIngestResult) -> None:
        # Turns refreshed by late spans changed too: their sessions are detected again.
        signals_detect_after_ingest(IngestResult(created=total.created + total.updated, events=total.events))

    @staticmethod
    def _line(r: TraceIngestResult) -> str:
        return (f"spans read {r.read}, turns created {r.created}, duplicates {r.duplicates}, rejected {r.rejected}, "
                f"updated {r.updated}, traces waiting for their root span {r.pending}")
