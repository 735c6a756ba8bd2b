import json
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from llm import client as llm
from shadow.services import replay

from ._progress import Progress


class Command(BaseCommand):
    help = ("Replay a day of production on a candidate release: sample N turns (whole conversations, by a salted "
            "hash of the session id), send each query with its logged contexts and the conversation before it to the "
            "release's OpenAI-compatible endpoint (no tools), within REPLAY_MAX_USD_PER_DAY (the spend ledger), and store the answers as "
            "shadow pairs next to the served ones. Users never see them.")

    def add_arguments(self, parser):
        parser.add_argument("--release", required=True, metavar="NAME")
        parser.add_argument("--day", default=None, metavar="YYYY-MM-DD", help="production day (default: yesterday, UTC)")
        parser.add_argument("--sample", type=int, default=None, metavar="N",
                            help="turns to sample (default SHADOW_SAMPLE_SIZE, 150)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        try:
            day = date.fromisoformat(o["day"]) if o["day"] else None
        except ValueError:
            raise CommandError(f"--day: expected YYYY-MM-DD, got {o['day']!r}") from None
        try:
            run = replay.shadow_run_create(release=o["release"], day=day, sample=o["sample"], user="shadow_run")
        except replay.ShadowError as e:
            raise CommandError(str(e)) from None
        bar = Progress("turn", f"{run.release.name} {run.day}")
        try:
            run = replay.shadow_run_execute(run_id=run.pk, progress=bar)
        except llm.LLMNotConfigured as e:
            raise CommandError(f"shadow run {run.pk} failed: {e}") from None
        finally:
            bar.close()
        if run.budget_stopped:
            # Shown whatever the output format: a capped run is not a complete sample.
            self.stderr.write(f"budget stop: {run.budget_reason}")
        if o["json"]:
            self.stdout.write(json.dumps(run.summary()))
        else:
            self.stdout.write(f"shadow run {run.pk}: {run.release.name} on {run.day}: sampled {run.sampled}, answered "
                              f"{run.answered}, failed {run.failed}"
                              f"{f', not sent {run.not_sent} (budget)' if run.not_sent else ''}, "
                              f"${float(run.cost_usd):.4f}")
