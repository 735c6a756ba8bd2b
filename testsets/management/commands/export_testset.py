import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from testsets.exports import FORMATS, export_version
from testsets.selectors import TestSetError, version_get


class Command(BaseCommand):
    help = ("Export a frozen test set version for an eval tool. Formats: jsonl (canonical: every field and "
            "its provenance, sha256 of the file = the version's sha256), csv, parquet, hf (a folder "
            "datasets.load_from_disk reads; a .zip OUTPUT gets it zipped), ragas (JSONL for "
            "ragas.EvaluationDataset.from_jsonl), deepeval (JSON goldens for "
            "EvaluationDataset.add_goldens_from_json_file), promptfoo (JSON tests file: tests: file://…). "
            "Every item carries its source ('generated' for generated cases).")

    def add_base_argument(self, parser, *args, **kwargs):
        # Our --version is the test set version (the interface), not Django's version flag.
        if "--version" not in args:
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("name", help="test set name")
        parser.add_argument("--version", type=int, required=True, dest="number", metavar="N",
                            help="frozen version number N (vN)")
        parser.add_argument("--format", required=True, dest="fmt", metavar="FORMAT",
                            help=f"one of: {', '.join(FORMATS)}")
        parser.add_argument("--output", required=True, metavar="PATH",
                            help="file (folder for hf) to write; an existing file is replaced, an existing "
                                 "directory is refused (never deleted)")
        parser.add_argument("--csv-raw", action="store_true",
                            help="csv: write cells as they are (by default a cell starting with = + - @ tab or CR "
                                 "gets a leading ' so a spreadsheet shows it instead of running it)")
        parser.add_argument("--json", action="store_true",
                            help='print {"testset","version","format","output","items"} as JSON')

    def handle(self, *args, **opts):
        name, number, fmt = opts["name"], opts["number"], opts["fmt"]
        if fmt not in FORMATS:
            raise CommandError(f"--format: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
        try:
            version = version_get(name=name, number=number)
        except TestSetError:
            raise CommandError(f"--version: test set {name!r} has no version {number}") from None
        try:
            out = export_version(version, fmt, Path(opts["output"]), csv_raw=opts["csv_raw"])
        except TestSetError as e:
            raise CommandError(str(e)) from None
        summary = {"testset": name, "version": number, "format": fmt, "output": str(out),
                   "items": version.item_count}
        self.stdout.write(json.dumps(summary) if opts["json"] else
                          f"{name} v{number}: {version.item_count} items exported as {fmt} to {out}")
