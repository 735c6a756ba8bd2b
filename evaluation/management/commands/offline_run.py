import json
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from evaluation.models import OfflineRun
from evaluation.services import offline
from llm import client as llm


class Command(BaseCommand):
    help = ("Score a release on a frozen test-set version: the release answers every item (its query, contexts "
            "and conversation) and the grader (GRADER_MODEL, temperature 0) compares each answer with the item's "
            "reference answer (correct 1, partially correct 0.5, incorrect 0). --served grades the answers "
            "production served instead (items that came from the release's production turns). Ends with "
            '{"release", "testset", "version", "items", "score", "ci_low", "ci_high"}.')

    def add_base_argument(self, parser, *args, **kwargs):
        # Our --version is the test-set version (the interface), not Django's version flag.
        if "--version" not in args:
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--release", required=True, metavar="NAME")
        parser.add_argument("--testset", required=True, metavar="T")
        parser.add_argument("--version", required=True, type=int, metavar="N")
        parser.add_argument("--served", action="store_true",
                            help="grade the answers production served, without generating")
        parser.add_argument("--max-usd", type=float, default=None,
                            help="spending cap for this run (default OFFLINE_MAX_USD)")
        parser.add_argument("--resume", type=int, default=None, metavar="RUN_ID",
                            help="finish a run stopped by its budget or an unavailable LLM")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            if opts["resume"] is not None:
                run = offline.offline_run_resume(run_id=opts["resume"], max_usd=opts["max_usd"])
            else:
                run = offline.offline_run_create(
                    release=opts["release"], testset=opts["testset"], version=opts["version"],
                    mode=OfflineRun.Mode.SERVED if opts["served"] else OfflineRun.Mode.GENERATE,
                    max_usd=opts["max_usd"], user="offline_run")
        except offline.OfflineError as e:
            raise CommandError(str(e), returncode=2) from None
        except llm.LLMNotConfigured as e:
            raise CommandError(str(e)) from None
        what = "served answers" if run.mode == OfflineRun.Mode.SERVED else f"answers of {run.candidate_model}"
        self.stderr.write(f"run {run.pk}: {run.release.name} on {run.version.testset.name} v{run.version.number}, "
                          f"{what} graded by {run.grader_model}, budget ${run.budget_usd}")
        bar = tqdm(total=0, unit="item", file=sys.stderr, disable=not sys.stderr.isatty())

        def progress(done, total):
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            run = offline.offline_run_execute(run_id=run.pk, progress=progress)
        except llm.LLMUnavailable as e:
            raise CommandError(f"the LLM stayed unavailable ({e}); run {run.pk} keeps what it scored: "
                               f"offline_run --release {run.release.name} --testset {run.version.testset.name} "
                               f"--version {run.version.number} --resume {run.pk}") from None
        except llm.LLMError as e:
            raise CommandError(f"run {run.pk} failed: {e}") from None
        finally:
            bar.close()
        if run.status == OfflineRun.Status.FAILED:
            raise CommandError(f"run {run.pk} stopped: {run.error}")
        self.stderr.write(f"run {run.pk}: {run.items} items scored, {run.failed} failed, {run.skipped} not "
                          f"applicable; {run.llm_requests} LLM requests, {run.prompt_tokens}+"
                          f"{run.completion_tokens} tokens, ${run.cost_usd}")
        result = offline.run_summary(run)
        if opts["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(_line(result))


def _line(r: dict) -> str:
    if r["score"] is None:
        return f"{r['release']} on {r['testset']} v{r['version']}: no item scored"
    ci = (f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r["ci_low"] is not None else " (no interval: one conversation)")
    return f"{r['release']} on {r['testset']} v{r['version']}: score {r['score']:.3f}{ci} over {r['items']} items"
