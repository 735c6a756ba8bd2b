import json

from django.core.management.base import BaseCommand, CommandError

from generation import services
from llm import client as llm
from generation.models import GenerationRun
from labelling.client import LabelStudioError, LabelStudioUnavailable
from labelling.services.push import batch_push


class Command(BaseCommand):
    help = ("Generate new eval cases that would trigger a failure mode, from its description and its real labelled "
            "failures (an OpenAI-compatible LLM, or --offline rules), drop duplicates of each other and of the test "
            "set, and send the rest to the Label Studio review project. Nothing becomes a test item until approved.")

    def add_arguments(self, parser):
        parser.add_argument("--failure-mode", required=True, metavar="CODE")
        parser.add_argument("--n", type=int, default=None, help="cases to ask for (default GENERATION_DEFAULT_N)")
        parser.add_argument("--model", default=None, help="LLM model (default GENERATION_MODEL)")
        parser.add_argument("--temperature", type=float, default=None)
        parser.add_argument("--offline", action="store_true",
                            help="rule-based variations of real failures (typos, truncation, ambiguity, ...)")
        parser.add_argument("--resume", type=int, default=None, metavar="RUN_ID",
                            help="finish a run left pending by an unavailable LLM")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        if opts["resume"] is not None:
            run = GenerationRun.objects.filter(pk=opts["resume"], failure_mode=opts["failure_mode"]).first()
            if run is None:
                raise CommandError(f"--resume: no run {opts['resume']} for {opts['failure_mode']}")
        else:
            try:
                run = services.generation_run_create(
                    failure_mode=opts["failure_mode"], n=opts["n"], model=opts["model"], offline=opts["offline"],
                    temperature=opts["temperature"], user="generate_cases")
            except (services.GenerationError, llm.LLMNotConfigured) as e:
                raise CommandError(str(e)) from None
        what = "offline rules" if run.offline else f"{run.model} at temperature {run.temperature}"
        self.stderr.write(f"run {run.pk}: {run.failure_mode}, {run.n} cases, {what}, "
                          f"{len(run.seed_item_ids)} real failures as seeds")
        try:
            run = services.generation_run_execute(run_id=run.pk)
        except llm.LLMUnavailable as e:
            raise CommandError(f"the LLM stayed unavailable ({e}); run {run.pk} is kept: "
                               f"generate_cases --failure-mode {run.failure_mode} --resume {run.pk}") from None
        except (llm.LLMError, services.GenerationError) as e:
            raise CommandError(f"run {run.pk} failed: {e}") from None
        if run.review_batch_id:
            try:
                pushed = batch_push(batch_id=run.review_batch_id)
                self.stderr.write(f"review batch {run.review_batch_id}: {pushed['pushed']} tasks pushed to Label Studio "
                                  f"project {pushed['project_id']}")
            except (LabelStudioError, LabelStudioUnavailable) as e:
                # The cases and their batch are stored; only the push is left to do.
                self.stderr.write(f"review batch {run.review_batch_id} saved but not pushed ({e}): "
                                  f"push_to_labelstudio --batch {run.review_batch_id}")
        result = services.summary(run)
        if opts["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"{result['failure_mode']}: generated {result['generated']}, duplicates dropped "
                              f"{result['duplicates_dropped']}, sent for review {result['sent_for_review']} "
                              f"(run {run.pk}, {run.prompt_tokens}+{run.completion_tokens} tokens, ${run.cost_usd})")
