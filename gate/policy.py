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


class PolicyLooser(PolicyError):
    """A request or --policy file that would loosen the server's policy; the message names the key."""


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


def _ratio(v):
    """A largest candidate/served ratio (> 0), or null for no limit."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise ValueError(f"expected a ratio above 0 (e.g. 1.2) or null for no limit, got {v!r}")
    return float(v)


def _signals(v):
    from evaluation.selectors import signal_names

    if not isinstance(v, (list, tuple)) or not all(isinstance(s, str) for s in v):
        raise ValueError(f"expected a list of signal names, got {v!r}")
    unknown = sorted(set(v) - set(signal_names()))
    if unknown:
        raise ValueError(f"unknown signal(s) {', '.join(unknown)} (signals: {', '.join(signal_names())})")
    return sorted(set(v))


# key -> (check, what it means). The order is the order shown in docs/gate.md and on the pages.
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
    "max_latency_p50_ratio": (_ratio, "guardrail: largest candidate/served ratio of the median latency (null: none)"),
    "max_latency_p95_ratio": (_ratio, "guardrail: largest candidate/served ratio of the p95 latency (null: none)"),
    "max_cost_ratio": (_ratio, "guardrail: largest candidate/served ratio of the mean cost per answer (null: none)"),
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
    # "settings" or "file:<path>" (the server's), then " + request: keys" / " + file:<path>: keys" when tightened
    source: str

    def __getattr__(self, key: str):
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.values, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def with_testset(self, testset: str | None) -> Policy:
        """--testset / the API's `testset`: allowed only where the policy names no test set (or the same)."""
        if not testset or testset == self.values.get("testset"):
            return self
        if self.values.get("testset"):
            raise PolicyLooser(f"testset: {testset!r} is not the policy's test set ({self.values['testset']!r}, "
                               f"{self.source}): {TIGHTER['testset'][1]}")
        return Policy({**self.values, "testset": testset}, f"{self.source} + testset: {testset}")


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


def _read_file(path: str) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise PolicyError(f"policy file {path}: cannot be read ({e.strerror or e})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PolicyError(f"policy file {path}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None


def policy_floor() -> Policy:
    """The server's policy: GATE_POLICY_FILE over the settings' GATE_POLICY if set, else the settings.
    Nothing a caller sends can go below it (policy_tighten)."""
    path = str(settings.GATE_POLICY_FILE or "")
    if not path:
        values = defaults()
        _cross_check(values, "settings GATE_POLICY")
        return Policy(values, "settings")
    return policy_from_mapping(_read_file(path), where=f"policy file {path}", source=f"file:{path}")


def policy_load(path: str | Path | None = None) -> Policy:
    """The policy in force: the server's (policy_floor), tightened by the file at `path` if given
    (release_gate --policy): a key the file would loosen is refused (PolicyLooser, exit 2)."""
    floor = policy_floor()
    if not path:
        return floor
    path = str(path)
    return policy_tighten(floor, _read_file(path), where=f"policy file {path}", source=f"file:{path}")


def policy_request(raw: Any) -> Policy:
    """The server's policy tightened by the `policy` of a POST /api/gate/ body."""
    return policy_tighten(policy_floor(), raw, where="request policy", source="request")


# --- tighten only -----------------------------------------------------------------------------------
# What a request or a --policy file may do to each key of the server's policy (the floor). A rule
# says whether `value` is at least as strict as `floor`. Keys that pick *which* evidence is read
# (windows, signal directions, a named test set) are neither tighter nor looser: another window or
# another direction can be chosen to make a candidate look better, so only the floor's value is
# accepted. Every key in KEYS has a rule (tests/test_gate_policy.py checks it).

_ACCEPT_STRICTER = {"either": {"either", "shadow", "ab", "both"}, "shadow": {"shadow", "both"},
                    "ab": {"ab", "both"}, "both": {"both"}}


def _at_most(floor, value) -> bool:
    return value <= floor


def _at_least(floor, value) -> bool:
    return value >= floor


def _limit_at_most(floor, value) -> bool:  # None = no limit: the loosest of all
    return floor is None or (value is not None and value <= floor)


def _only_if_floor(floor, value) -> bool:  # a permission (True) the floor must already give
    return floor or not value


def _same(floor, value) -> bool:
    return value == floor


def _same_unless_open(floor, value) -> bool:
    return not floor or value == floor


TIGHTER: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "testset": (_same_unless_open, "may be named only when the server's policy names none"),
    "offline_margin": (_at_most, "smaller is tighter"),
    "allow_stale_version": (_only_if_floor, "true only when the server's policy allows it"),
    "accept": (lambda floor, value: value in _ACCEPT_STRICTER[floor],
               "either < shadow, ab < both: a request may demand more production evidence, never less"),
    "non_inferiority_margin": (_at_most, "smaller is tighter"),
    "min_shadow_pairs": (_at_least, "larger is tighter"),
    "min_shadow_days": (_at_least, "larger is tighter"),
    "shadow_window_days": (_same, "fixed: a window picks which pairs are read, so only the server's is used"),
    "max_inconsistent_rate": (_at_most, "smaller is tighter"),
    "min_baseline_share": (_at_least, "larger is tighter"),
    "ab_margin": (_at_most, "smaller is tighter"),
    "min_ab_turns": (_at_least, "larger is tighter"),
    "min_ab_days": (_at_least, "larger is tighter"),
    "ab_window_days": (_same, "fixed: a window picks which turns are read, so only the server's is used"),
    "higher_is_better": (_same, "fixed: a signal's direction is not the caller's to choose"),
    "neutral_signals": (_same, "fixed: which signals are judged changes the others' Bonferroni intervals too"),
    "max_latency_p50_ratio": (_limit_at_most, "smaller is tighter; null (no limit) only when the server's is null"),
    "max_latency_p95_ratio": (_limit_at_most, "smaller is tighter; null (no limit) only when the server's is null"),
    "max_cost_ratio": (_limit_at_most, "smaller is tighter; null (no limit) only when the server's is null"),
    "shadow_decides_on": (_same, "fixed: which win rate decides (judge or human-calibrated) is the server's choice"),
    "min_audited_pairs": (_same, "fixed: it moves the switch between the judge's and the calibrated rate, which "
                                 "is not tighter either way"),
    "ab_expected_share": (_same, "fixed: the split the canary was declared with is a fact, not a preference"),
    "ab_srm_alpha": (_at_least, "larger is tighter (a mismatch is found more readily)"),
}


def looser_keys(floor: dict, values: dict) -> list[str]:
    """The keys of `values` that would loosen `floor`, in KEYS order."""
    return [k for k in KEYS if k in values and not TIGHTER[k][0](floor[k], values[k])]


def policy_tighten(floor: Policy, raw: Any, *, where: str, source: str) -> Policy:
    """`floor` with `raw`'s keys over it, each only tighter or equal; the first looser key is refused."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a mapping of policy keys (e.g. `ab_margin: 0.02`), got "
                          f"{type(raw).__name__}")
    asked = _validate(raw, where)
    values = {**floor.values, **asked}
    _cross_check(values, where)
    looser = looser_keys(floor.values, asked)
    if looser:
        key = looser[0]
        raise PolicyLooser(f"{where}: {key}: {asked[key]!r} is looser than the server's policy "
                           f"({floor.values[key]!r}, {floor.source}): {TIGHTER[key][1]}; a request or a --policy "
                           f"file may only tighten the server's policy"
                           + (f" (also looser: {', '.join(looser[1:])})" if looser[1:] else ""))
    changed = [k for k in KEYS if k in asked and asked[k] != floor.values[k]]
    return Policy(values, f"{floor.source} + {source}: {', '.join(changed) or 'no change'}")
