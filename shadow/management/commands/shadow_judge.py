import json

from django.core.management.base import BaseCommand, CommandError

from llm import client as llm
from shadow.services import judge
from shadow.services.judging import PromptMissing
from shadow.services.mirror import mirror_pairs_sync

from ._progress import Progress


class Command(BaseCommand):
    help = ("Judge every unjudged shadow pair with JUDGE_MODEL at temperature 0, twice with the answers swapped; two "
            "orders that disagree make the pair 'inconsistent' (a tie). Mirrored answers are paired first. "
            "--humans-from records human preferences (judge_calibrate's format) as the verdicts instead: the demo "
            "without an LLM.")

    def add_arguments(self, parser):
        parser.add_argument("--release", default=None, metavar="NAME")
        parser.add_argument("--humans-from", default=None, metavar="PATH",
                            help="JSON lines with id, response_a, response_b and the humans' pick: people stand in "
                                 "for the judge (pairs whose turn id and candidate answer match a line)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        try:
            mirrored = mirror_pairs_sync()
        except ImportError:  # production without mirrored answers
            mirrored = None
        if mirrored and mirrored["unknown_release"]:
            self.stderr.write("mirrored answers for unknown releases (release_add them): " + ", ".join(
                f"{k} ({v})" for k, v in mirrored["unknown_release"].items()))
        if o["humans_from"]:
            try:
                run = judge.shadow_judge_from_humans(path=o["humans_from"], release=o["release"])
            except (OSError, ValueError, judge.JudgeError) as e:
                raise CommandError(str(e)) from None
            self.stderr.write(f"verdicts are the humans' picks from {o['humans_from']}, standing in for an LLM judge. "
                              "To judge with a model: set JUDGE_MODEL, JUDGE_BASE_URL and JUDGE_API_KEY (or "
                              "OPENAI_BASE_URL / OPENAI_API_KEY) and run shadow_judge without --humans-from.")
        else:
            try:
                run = judge.judge_run_create(release=o["release"], user="shadow_judge")
            except (judge.JudgeError, llm.LLMNotConfigured, PromptMissing) as e:
                raise CommandError(str(e)) from None
            bar = Progress("pair", f"judge {run.judge_model}")
            try:
                run = judge.shadow_judge(run_id=run.pk, progress=bar)
            finally:
                bar.close()
        summary = run.summary()
        if o["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(f"judged {summary['judged']} pairs with {run.judge_model} ({run.prompt_version}): candidate "
                              f"{summary['candidate_wins']}, served {summary['served_wins']}, ties {summary['ties']}, "
                              f"inconsistent {summary['inconsistent']}, failed {summary['failed']}, "
                              f"${summary['cost_usd']:.4f}")
