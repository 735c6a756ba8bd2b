"""The app boundaries in .importlinter cover every app: a new app gets its contract in the commit
that adds it (lint-imports itself runs in scripts/test.sh, before pytest)."""
import configparser
from pathlib import Path

from django.conf import settings

REPO = Path(__file__).resolve().parent.parent


def test_every_app_of_ours_is_analysed_and_has_a_contract():
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    roots = set(config["importlinter"]["root_packages"].split())
    ours = {app.split(".")[0] for app in settings.INSTALLED_APPS if (REPO / app.split(".")[0]).is_dir()}
    assert ours <= roots, f"add {sorted(ours - roots)} to root_packages in .importlinter"
    contracted = {config[s]["source_modules"].strip() for s in config.sections() if s.startswith("importlinter:contract:")}
    missing = ours - contracted
    assert not missing, f"write the contract of {sorted(missing)} in .importlinter (docs/architecture.md has the rules)"
    assert "evalgap" in roots  # no app may import the project package
