"""The gate's policy: its defaults in settings (GATE_POLICY), any key overridden by a small YAML file.

The file is checked key by key: an unknown key, a wrong type or a value out of range is an error
that names the key, never a silent fallback to the default (a typo in `ab_margin` must not ship a
release under a margin nobody chose). The policy in force is recorded with every decision, with
the sha256 of its canonical JSON, so a decision can be traced to the exact rules it was made under.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml
from django.conf import settings

ACCEPT = ("shadow", "ab", "either", "both")


class GateUsageError(ValueError):
    """The gate cannot be asked this (unknown release, missing test set, bad policy): exit code 2."""


class PolicyError(GateUsageError):
    """A policy that cannot be used; the message names the key."""


def _number(low: float, high: float, *, high_open: bool = False) -> Callable[[Any], Any]:
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"expected a number, got {v!r}")
        if not (low <= v < high if high_open else low <= v <= high):
            raise ValueError(f"expected a number from {low} to {high}{' (excluded)' if high_open else ''}, got {v!r}")
        return float(v)
    return check


def _count(v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"expected a whole number, got {v!r}")
    if v < 1:
        raise ValueError(f"expected at least 1, got {v!r}")
    return v


def _flag(v):
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _accept(v):
    if v not in ACCEPT:
        raise ValueError(f"expected one of {', '.join(ACCEPT)}, got {v!r}")
    return v


def _choice(*allowed: str) -> Callable[[Any], Any]:
    def check(v):
        if v not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {v!r}")
        return v
    return check


def _testset(v):
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise ValueError(f"expected a test set name, got {v!r}")
    return v


def _signals(v):
    from evaluation.selectors import signal_names

    if not isinstance(v, (list, tuple)) or not all(isinstance(s, str) for s in v):
        raise ValueError(f"expected a list of signal names, got {v!r}")
    unknown = sorted(set(v) - set(signal_names()))
    if unknown:
        raise ValueError(f"unknown signal(s) {', '.join(unknown)} (signals: {', '.join(signal_names())})")
    return sorted(set(v))


# key -> (check, what it means). The order is the order shown in the README and on the pages.
KEYS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "testset": (_testset, "test set the offline scores are read on (empty: the candidate's latest scored one)"),
    "offline_margin": (_number(0, 1, high_open=True), "offline score difference allowed below 0"),
    "allow_stale_version": (_flag, "accept offline scores on an older frozen version than the latest"),
    "accept": (_accept, "production evidence that can make a release ship: shadow, ab, either, both"),
    "non_inferiority_margin": (_number(0, 0.5, high_open=True),
                               "shadow: the win rate's lower bound must reach 0.5 minus this"),
    "min_shadow_pairs": (_count, "shadow: judged pairs needed before the win rate decides anything"),
    "min_shadow_days": (_count, "shadow: days with judged pairs needed"),
    "shadow_window_days": (_count, "shadow: the last N days of pairs read"),
    "max_inconsistent_rate": (_number(0, 1), "shadow: above this share of self-contradicting pairs the judge is "
                                             "not evidence"),
    "min_baseline_share": (_number(0, 1), "shadow: share of pairs whose served answer came from the baseline"),
    "ab_margin": (_number(0, 1, high_open=True), "A/B: how much worse (absolute) each rate may be"),
    "min_ab_turns": (_count, "A/B: turns each side needs (signals detected)"),
    "min_ab_days": (_count, "A/B: days the candidate must have served"),
    "ab_window_days": (_count, "A/B: the last N days the candidate served"),
    "higher_is_better": (_signals, "A/B: signals where more is better (the others: fewer is better)"),
    "neutral_signals": (_signals, "A/B: signals shown but never judged (neither more nor fewer is worse)"),
    # gatestats (issue #18): the human-calibrated win rate and the A/B split.
    "shadow_decides_on": (_choice("auto", "judge", "calibrated"),
                          "shadow: the decisive win rate that decides: judge, calibrated (by the human audit), or "
                          "auto (calibrated from min_audited_pairs on)"),
    "min_audited_pairs": (_count, "shadow: human-picked audited pairs in the window before the calibrated rate "
                                  "decides (shadow_decides_on: auto)"),
    "ab_expected_share": (_number(0.01, 0.99), "A/B: the share of sessions (or users) the canary is "
                                                         "declared to get; a mismatch is insufficient evidence"),
    "ab_srm_alpha": (_number(0, 1, high_open=True), "A/B: the sample-ratio-mismatch test's level (chi-square)"),
}


@dataclass(frozen=True)
class Policy:
    values: dict
    source: str  # "settings", "file:<path>" or "request"

    def __getattr__(self, key: str):
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.values, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def with_testset(self, testset: str | None) -> Policy:
        if not testset:
            return self
        return Policy({**self.values, "testset": testset}, self.source)


def _validate(raw: dict, where: str) -> dict:
    out = {}
    for key, value in raw.items():
        if key not in KEYS:
            raise PolicyError(f"{where}: {key}: unknown key (known keys: {', '.join(KEYS)})")
        try:
            out[key] = KEYS[key][0](value)
        except ValueError as e:
            raise PolicyError(f"{where}: {key}: {e}") from None
    return out


def _cross_check(values: dict, where: str) -> None:
    both = sorted(set(values["higher_is_better"]) & set(values["neutral_signals"]))
    if both:
        raise PolicyError(f"{where}: neutral_signals: {', '.join(both)} also in higher_is_better; a signal has one "
                          "direction")
    for window, least in (("shadow_window_days", "min_shadow_days"), ("ab_window_days", "min_ab_days")):
        if values[window] < values[least]:
            raise PolicyError(f"{where}: {window}: {values[window]} days cannot hold {least} = {values[least]} days")


def defaults() -> dict:
    values = _validate(dict(settings.GATE_POLICY), "settings GATE_POLICY")
    missing = [k for k in KEYS if k not in values]
    if missing:
        raise PolicyError(f"settings GATE_POLICY: {missing[0]}: missing")
    return values


def policy_from_mapping(raw: Any, *, where: str, source: str) -> Policy:
    """The defaults with `raw`'s keys over them, checked."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a mapping of policy keys (e.g. `ab_margin: 0.02`), got "
                          f"{type(raw).__name__}")
    values = {**defaults(), **_validate(raw, where)}
    _cross_check(values, where)
    return Policy(values, source)


def policy_load(path: str | Path | None = None) -> Policy:
    """The policy in force: `path` if given, else settings.GATE_POLICY_FILE if set, else the defaults."""
    path = str(path or settings.GATE_POLICY_FILE or "")
    if not path:
        values = defaults()
        _cross_check(values, "settings GATE_POLICY")
        return Policy(values, "settings")
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise PolicyError(f"policy file {path}: cannot be read ({e.strerror or e})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PolicyError(f"policy file {path}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    return policy_from_mapping(raw, where=f"policy file {path}", source=f"file:{path}")
