import json
import sys

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from proxy.recorder import spool_drain
from proxy.server import ProxyApp
from proxy.services import ProxyConfigError, recorder_build, shadows_parse, spool_dir_for


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise CommandError(f"--listen {value!r}: expected HOST:PORT (e.g. 127.0.0.1:8787)")
    return host or "127.0.0.1", int(port)


class Command(BaseCommand):
    help = ("An OpenAI-compatible mirroring proxy: forwards /v1/* to --upstream and streams its answers back "
            "byte for byte; records every chat call as a turn of --source, and asks each --shadow release the "
            "same messages for its share of sessions, after the user's answer, as a mirrored answer.")

    def add_arguments(self, parser):
        parser.add_argument("--listen", default="127.0.0.1:8787", help="HOST:PORT to serve on")
        parser.add_argument("--upstream", help="the served model's base URL, as an OpenAI client takes it "
                                               "(e.g. https://api.openai.com/v1)")
        parser.add_argument("--source", required=True, help="the production source the turns belong to")
        parser.add_argument("--shadow", action="append", default=[], metavar="RELEASE=PERCENT",
                            help="mirror PERCENT of sessions to a release (repeatable)")
        parser.add_argument("--spool-dir", help="where turns wait when the database cannot take them "
                                                "(default PROXY_SPOOL_DIR/<source>)")
        parser.add_argument("--drain-spool", action="store_true",
                            help="only ingest what a proxy of --source spooled, then exit")
        parser.add_argument("--json", action="store_true", help="end with one JSON summary line")

    def handle(self, *args, **o):
        if o["drain_spool"]:
            out = spool_drain(source_name=o["source"], spool_dir=spool_dir_for(o["source"], o["spool_dir"]))
            self.stdout.write(json.dumps(out) if o["json"] else
                              f"spool: {out['files']} files ingested, {out['created']} turns created, "
                              f"{out['shadow']} mirrored answers, {out['duplicates']} duplicates, "
                              f"{out['rejected']} rejected")
            return
        if not o["upstream"]:
            raise CommandError("--upstream: required (the served model's base URL)")
        host, port = host_port(o["listen"])
        try:
            shadows = shadows_parse(o["shadow"])
        except ProxyConfigError as e:
            raise CommandError(str(e)) from None
        allowed = settings.SHADOW_MIRROR_SOURCES
        if shadows and "*" not in allowed and o["source"] not in allowed:
            # Ingest would reject every mirrored answer of this source: say so now, not in the rejects.
            raise CommandError(f"--shadow: source {o['source']!r} is not allowed to mirror answers; add it to "
                               f"SHADOW_MIRROR_SOURCES (now {', '.join(allowed) or 'empty'})")
        recorder = recorder_build(source=o["source"], shadows=shadows, spool_dir=o["spool_dir"])
        app = ProxyApp(upstream=o["upstream"], recorder=recorder)
        # The recorder's threads share the interpreter lock with the event loop: hand it back to the loop
        # within 1 ms (default 5 ms) so a batch being written never holds up a user's answer for long.
        sys.setswitchinterval(0.001)
        recorder.start()
        if not o["json"]:
            self.stderr.write(f"proxy: http://{host}:{port}/v1 -> {o['upstream']} (source {o['source']}; shadow "
                              f"{', '.join(f'{s.release} {s.percent:g}%' for s in shadows) or 'none'})")
        try:
            uvicorn.Server(uvicorn.Config(app, host=host, port=port, lifespan="on", log_level="warning",
                                          access_log=False)).run()
        except KeyboardInterrupt:
            pass  # uvicorn has shut down gracefully and re-raises the signal: the recorder flushes below
        finally:
            recorder.stop()
        stats = recorder.counters.as_dict()
        self.stdout.write(json.dumps(stats) if o["json"] else
                          f"proxy: {stats['calls']} calls, {stats['turns_written']} turns written, "
                          f"{stats['turns_spooled'] + stats['lines_spooled']} lines spooled, "
                          f"{stats['shadow_answered']} mirrored answers, {stats['shadow_dropped']} shadow calls "
                          f"dropped (queue full), {stats['shadow_failed']} failed")
