"""What simple reference "judges" score on the four human-preference sets.

    .venv/bin/python examples/judge_preferences/baselines.py [--json]

For each set: "always A" asked once; "always A" asked in both orders (it then says A, then B for
the same pair: inconsistent, so a tie); "always longer" (the longer answer in characters, a tie
at equal length; the same in both orders); and the LLM verdicts that come with the data (one
order only). Every number is core.stats.pairwise_calibration, the function judge_calibrate
reports with, so these rows read exactly like its output. Prints the Markdown tables of
README.md (or, with --json, every number with its n and Wilson interval).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from core.stats import pairwise_calibration  # noqa: E402

SETS = ("pandalm", "llmfao", "mtbench", "llmbar_adversarial")
FLIP = {"a": "b", "b": "a", "tie": "tie", None: None}


def _longer(r: dict[str, Any]) -> str:
    la, lb = len(r["response_a"]), len(r["response_b"])
    return "a" if la > lb else "b" if lb > la else "tie"


def judges_for(rows: list[dict[str, Any]]) -> dict[str, tuple[list, list | None]]:
    """Judge name -> (verdicts with A first, verdicts with B first mapped back, or None)."""
    n = len(rows)
    judges: dict[str, tuple[list, list | None]] = {
        "always A (one order)": (["a"] * n, None),
        "always A (both orders)": (["a"] * n, ["b"] * n),
        "always longer": ([_longer(r) for r in rows], [_longer(r) for r in rows]),
    }
    for name in rows[0].get("judges", {}):
        judges[f"{name} (from the data, one order)"] = ([r["judges"][name] for r in rows], None)
    return judges


def calibrate(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    human = [r["human"] for r in rows]
    len_a = [len(r["response_a"]) for r in rows]
    len_b = [len(r["response_b"]) for r in rows]
    return {
        name: pairwise_calibration(first, human, len_a, len_b, judge_swapped=swapped)
        for name, (first, swapped) in judges_for(rows).items()
    }


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _pct_ci(res: dict[str, Any], key: str) -> str:
    if res[key] is None:
        return "–"
    lo, hi = res["intervals"][key]
    return f"{100 * res[key]:.1f} % ({100 * lo:.1f}–{100 * hi:.1f})"


def markdown(set_name: str, rows: list[dict[str, Any]], results: dict[str, dict[str, Any]]) -> str:
    counts = {v: sum(r["human"] == v for r in rows) for v in ("a", "b", "tie")}
    any_result = next(iter(results.values()))
    lines = [
        f"**{set_name}** — {len(rows)} pairs (human a={counts['a']}, b={counts['b']}, tie={counts['tie']}); "
        f"humans prefer the longer answer in **{_pct(any_result['human_longer_preferred_rate'])}** "
        f"of their decisive picks on pairs of unequal length (n = {any_result['n']['human_longer_preferred_rate']}).",
        "",
        "| judge | pairs | agreement (95 % CI) | agreement, human decisive | agreement, both decisive "
        "| κ | swap consistency | first-position rate | longer preferred |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, res in results.items():
        kappa = "–" if res["cohen_kappa"] is None else f"{res['cohen_kappa']:.3f}"
        pairs = f"{res['pairs']}" + (f" (+{res['missing']} no verdict)" if res["missing"] else "")
        lines.append(
            f"| {name} | {pairs} | {_pct_ci(res, 'agreement')} | {_pct_ci(res, 'agreement_decisive')} "
            f"| {_pct(res['agreement_both_decisive'])} | {kappa} | {_pct(res['swap_consistency'])} "
            f"| {_pct(res['first_position_rate'])} | {_pct(res['longer_preferred_rate'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(HERE), help="folder of the <set>.jsonl files")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    blocks = []
    for set_name in SETS:
        with open(Path(args.dir) / f"{set_name}.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        results = calibrate(rows)
        out[set_name] = results
        blocks.append(markdown(set_name, rows, results))
    print(json.dumps(out, indent=1) if args.json else "\n\n".join(blocks))


if __name__ == "__main__":
    main()
