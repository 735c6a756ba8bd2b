import json

from django.core.management.base import BaseCommand, CommandError

from releases import services
from releases.selectors import release_as_dict


class Command(BaseCommand):
    help = ("Add a release: a named model configuration (model, prompt version, OpenAI-compatible endpoint, the "
            "name of the environment variable holding its key, system prompt). Production turns belong to it by "
            "metadata.release, else by model.")

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--model", required=True)
        parser.add_argument("--prompt-version", default="")
        parser.add_argument("--base-url", default="", help="OpenAI-compatible endpoint (default OPENAI_BASE_URL)")
        parser.add_argument("--api-key-env", default="", metavar="VAR",
                            help="environment variable holding the endpoint's key (default OPENAI_API_KEY)")
        parser.add_argument("--system-prompt-file", default=None, metavar="F")
        parser.add_argument("--shadow", action="store_true", help="replay it daily on production (beat schedule)")
        parser.add_argument("--data-boundary", choices=("same", "redacted"), default="redacted",
                            help="may the candidate endpoint receive raw production text? same: replay sends it "
                                 "exactly the served model's input; redacted (default): redacted input, and the "
                                 "report and the gate say so")
        parser.add_argument("--update", action="store_true", help="change the release if it exists")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        try:
            release, created = services.release_add(
                name=o["name"], model=o["model"], prompt_version=o["prompt_version"], base_url=o["base_url"],
                api_key_env=o["api_key_env"], system_prompt_file=o["system_prompt_file"], shadow_enabled=o["shadow"],
                update=o["update"], user="release_add", data_boundary=o["data_boundary"])
        except services.ReleaseError as e:
            raise CommandError(str(e)) from None
        if o["json"]:
            self.stdout.write(json.dumps({**release_as_dict(release), "created": created}))
        else:
            self.stdout.write(f"release {release.name} {'added' if created else 'updated'}: model {release.model}"
                              f"{', prompt ' + release.prompt_version if release.prompt_version else ''}"
                              f", data boundary {release.data_boundary}")
