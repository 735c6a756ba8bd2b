import json

from django.core.management.base import BaseCommand, CommandError

from evaluation.importers import FORMATS, ImportFormatError
from evaluation.management.commands.offline_run import _line
from evaluation.services import offline

SHOWN = 10


class Command(BaseCommand):
    help = ("Import per-item scores computed elsewhere for a release on a frozen test-set version, keyed by the "
            "export's item key: scores-jsonl ({\"key\", \"score\"} lines), ragas (the CSV/JSONL of "
            "EvaluationResult.to_pandas(); --metric picks the column), deepeval (a test run's JSON) or promptfoo "
            "(promptfoo eval -o out.json). Keys the version does not hold are reported, never dropped silently. "
            'Ends with {"release", "testset", "version", "items", "score", "ci_low", "ci_high"}.')

    def add_base_argument(self, parser, *args, **kwargs):
        # Our --version is the test-set version (the interface), not Django's version flag.
        if "--version" not in args:
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--release", required=True, metavar="NAME")
        parser.add_argument("--testset", required=True, metavar="T")
        parser.add_argument("--version", required=True, type=int, metavar="N")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("--metric", default=None, metavar="M",
                            help="the metric to read (ragas column, deepeval metric, promptfoo named score)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            res = offline.offline_import(path=opts["path"], release=opts["release"], testset=opts["testset"],
                                         version=opts["version"], fmt=opts["fmt"], metric=opts["metric"],
                                         user="offline_import")
        except (offline.OfflineError, ImportFormatError) as e:
            raise CommandError(str(e), returncode=2) from None
        run = res.run
        self.stderr.write(f"run {run.pk}: {opts['fmt']} metric {run.metric!r} from {opts['path']}: "
                          f"{run.items} items scored, {len(res.failed)} without a score, "
                          f"{res.missing} items of the version not in the file")
        for line in res.failed[:SHOWN]:
            self.stderr.write(f"  no score: {line}")
        if res.unknown:
            self.stderr.write(f"{len(res.unknown)} rows are not items of {run.version.testset.name} "
                              f"v{run.version.number} (kept on run {run.pk}, not scored):")
            for key in res.unknown[:SHOWN]:
                self.stderr.write(f"  unknown: {key}")
            if len(res.unknown) > SHOWN:
                self.stderr.write(f"  … and {len(res.unknown) - SHOWN} more (admin: offline run {run.pk})")
        result = offline.run_summary(run)
        self.stdout.write(json.dumps(result) if opts["json"] else _line(result))
