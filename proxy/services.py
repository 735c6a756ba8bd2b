"""Building a proxy from its command line: the candidates it mirrors to, and its recorder."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from django.conf import settings

from llm import client as llm
from releases.selectors import release_get

from .recorder import Recorder, Shadow


class ProxyConfigError(Exception):
    """A flag cannot be used as given; the message names it."""


def shadows_parse(specs: list[str]) -> list[Shadow]:
    """`RELEASE=PERCENT` flags into candidates, each a known release with its endpoint."""
    out, seen = [], set()
    for spec in specs:
        name, sep, percent = spec.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ProxyConfigError(f"--shadow {spec!r}: expected RELEASE=PERCENT (e.g. support-bot-rc1=5)")
        try:
            share = float(percent)
        except ValueError:
            raise ProxyConfigError(f"--shadow {spec!r}: PERCENT must be a number from 0 to 100") from None
        if not 0 <= share <= 100:
            raise ProxyConfigError(f"--shadow {spec!r}: PERCENT must be from 0 to 100, not {share:g}")
        if name in seen:
            raise ProxyConfigError(f"--shadow {spec!r}: release {name!r} is named twice")
        release = release_get(name=name)
        if release is None:
            raise ProxyConfigError(f"--shadow {spec!r}: no release named {name!r} "
                                   f"(python manage.py release_add {name} --model M --base-url URL)")
        seen.add(name)
        endpoint = llm.endpoint_for(role=f"release:{release.name}", base_url=release.base_url,
                                    api_key_env=release.api_key_env, model=release.model,
                                    price_in=settings.SHADOW_PRICE_PER_1K_PROMPT_TOKENS,
                                    price_out=settings.SHADOW_PRICE_PER_1K_COMPLETION_TOKENS)
        if endpoint.missing():
            raise ProxyConfigError(f"--shadow {spec!r}: {llm.not_configured_message(endpoint)}")
        out.append(Shadow(release=name, percent=share, endpoint=endpoint))
    return out


def spool_dir_for(source: str, spool_dir: str | None = None) -> Path:
    """One spool directory per source, so whatever drains it knows the source of every line."""
    return Path(spool_dir) if spool_dir else Path(settings.PROXY_SPOOL_DIR) / quote(source, safe="")


def recorder_build(*, source: str, shadows: list[Shadow], spool_dir: str | None = None) -> Recorder:
    return Recorder(source=source, spool_dir=spool_dir_for(source, spool_dir), shadows=shadows,
                    salt=settings.PROXY_SHADOW_SALT, queue_size=settings.PROXY_QUEUE_SIZE,
                    shadow_queue_size=settings.PROXY_SHADOW_QUEUE_SIZE, shadow_workers=settings.PROXY_SHADOW_WORKERS)
