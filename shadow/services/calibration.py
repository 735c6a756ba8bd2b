"""Knowing the judge: run it on human pairwise preferences and compare.

Input: JSON lines {"query", "response_a", "response_b", "human": "a" | "b" | "tie"} (optionally
"id", "conversation", "contexts"). The judge sees each pair in both orders, with the same prompt
and failure modes as in shadow judging; an order whose output stays malformed, or that the judge
could not be reached for, leaves the pair out (counted in `missing`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings

from core import stats
from core.jsonl import JsonLineError, json_objects
from llm import client as llm

from ..models import JudgeCalibration
from .judge import active_modes
from .judging import Case, judge_order, load_prompt, stream

CALIBRATION_KEYS = ("pairs", "agreement", "agreement_decisive", "cohen_kappa", "swap_consistency",
                    "first_position_rate", "longer_preferred_rate", "human_longer_preferred_rate")


class CalibrationError(Exception):
    pass


def read_preferences(path: str | Path, limit: int | None = None) -> list[dict]:
    path = Path(path)
    if not path.exists():
        raise CalibrationError(f"PATH: no file {path}")
    out = []
    try:
        for no, rec in json_objects(path):
            for key in ("query", "response_a", "response_b"):
                if not isinstance(rec.get(key), str):
                    raise CalibrationError(f"{path}:{no}: {key!r} must be a string")
            if rec.get("human") not in ("a", "b", "tie"):
                raise CalibrationError(f"{path}:{no}: 'human' must be \"a\", \"b\" or \"tie\"")
            out.append(rec)
            if limit and len(out) >= limit:
                break
    except JsonLineError as e:
        raise CalibrationError(f"{path}:{e.line_no}: {e.reason}") from None
    if not out:
        raise CalibrationError(f"{path}: no pairs")
    return out


def judge_calibrate(*, path: str | Path, limit: int | None = None, progress=None) -> tuple[dict, JudgeCalibration]:
    """Returns (the pairwise_calibration dict, the stored row)."""
    records = read_preferences(path, limit)
    ep = llm.endpoint("JUDGE")
    if ep.missing():
        raise llm.LLMNotConfigured(llm.not_configured_message(ep, hint=" (JUDGE_MODEL names the judge)"))
    prompt = load_prompt()
    modes = active_modes()
    codes = {m["code"] for m in modes}
    cases = [Case(query=r["query"], conversation=tuple(r.get("conversation") or ()),
                  contexts=tuple(r.get("contexts") or ()), first=r["response_a"], second=r["response_b"])
             for r in records]
    got: dict[tuple[int, bool], str | None] = {}
    cost = 0

    def ask(item):
        i, swapped = item
        return judge_order(ep, prompt, cases[i], swapped=swapped, modes=modes, codes=codes,
                           spend=llm.Spend(purpose="calibration"))

    work = [(i, swapped) for i in range(len(cases)) for swapped in (False, True)]
    for (i, swapped), result in stream(ask, work, concurrency=settings.JUDGE_CONCURRENCY):
        if not isinstance(result, Exception):
            cost += result.cost_usd
        if isinstance(result, Exception) or not result.ok:
            got[(i, swapped)] = None
        else:
            # In the case's terms: "first" is response_a whichever side it was shown on.
            got[(i, swapped)] = {"first": "a", "second": "b", "tie": "tie"}[result.winner()]
        if progress:
            progress(len(got), len(work))
    result = stats.pairwise_calibration(
        [got[(i, False)] for i in range(len(cases))], [r["human"] for r in records],
        [len(r["response_a"]) for r in records], [len(r["response_b"]) for r in records],
        judge_swapped=[got[(i, True)] for i in range(len(cases))])
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    row = JudgeCalibration.objects.create(name=Path(path).name, sha256=digest, judge_model=ep.model,
                                          prompt_version=prompt.version, pairs=result["pairs"], result=result,
                                          cost_usd=cost)
    return result, row


def calibration_for_json(result: dict) -> dict:
    return {k: result[k] for k in CALIBRATION_KEYS}
