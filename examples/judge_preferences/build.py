"""Convert the four human pairwise-preference sets into judge_calibrate's JSON lines.

Run once by a developer (never at run time), from the repository root:

    python3 examples/judge_preferences/build.py [SRC] [--out DIR] [--fixture tests/fixtures/judge_prefs_small.jsonl]

SRC defaults to ../shared/data/judge_preferences (the shared data checked out next to the
repo); DIR to this script's folder. Python 3.11, stdlib only, deterministic: the output keeps
the source order, so running it twice gives byte-identical files. Each line is

    {"id", "set", "query", "response_a", "response_b", "human": "a" | "b" | "tie", ...extras}

(extras: see README.md). The script also copies the licences and the LLMFAO instructions,
validates every line and prints counts, sizes and sha256 of what it wrote. It refuses to write
when a source file's sha256 differs from the one its README documents.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

HERE = Path(__file__).resolve().parent
VERDICTS = ("a", "b", "tie")

# Source folder -> (output set name, sha256 of pairs.jsonl as the source README documents it)
SOURCES = {
    "pandalm_testset": ("pandalm", "114156cd8db16fd6d53edbdc5080fc79ff983b8ea8bd97ac942b1e9ae2e88c0d"),
    "llmfao_crowd": ("llmfao", "059bffec5ddca211a2bbc5439f460e13764d331f37ec343248fcb1af0b2542cf"),
    "mtbench_llmbar": ("mtbench", "9da20b6048468a24720a599f64160d80929cd4f818c60db7e5c3b0e61811ce02"),
    "llmbar_adversarial": ("llmbar_adversarial", "cecffa79b9e701d20d2d4c9a31cf4d3538411b4b7b477db4a1f528ccee86846e"),
}
# (source file, name under licenses/ or next to the data)
COPIES = [
    ("pandalm_testset/LICENSE", "licenses/LICENSE-pandalm-Apache-2.0.txt"),
    ("llmfao_crowd/LICENSE.CC-BY", "licenses/LICENSE-CC-BY-4.0.txt"),
    ("llmbar_adversarial/LICENSE", "licenses/LICENSE-llmbar-MIT.txt"),
    ("llmfao_crowd/crowd-instruction.md", "llmfao-crowd-instruction.md"),
    ("llmfao_crowd/gpt-instruction.txt", "llmfao-gpt-instruction.txt"),
]


def _base(row: dict[str, Any], set_name: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "set": set_name,
        "query": row["prompt"],
        "response_a": row["response_a"],
        "response_b": row["response_b"],
        "human": row["human"],
    }


def _pandalm(row: dict[str, Any]) -> dict[str, Any]:
    out = _base(row, "pandalm")
    out["human_votes"] = dict(collections.Counter(row["votes"].values()))
    out["judges"] = {"gpt-3.5-turbo": row["gpt35_turbo_verdict"], "pandalm-7b": row["pandalm7b_verdict"]}
    out["model_a"], out["model_b"] = row["model_a"], row["model_b"]
    return out


def _llmfao(row: dict[str, Any]) -> dict[str, Any]:
    out = _base(row, "llmfao")
    out["human_votes"] = row["vote_counts"]
    out["human_unique_plurality"] = row["human_unique_plurality"]
    out["judges"] = {"gpt-4": row["gpt4_verdict"], "gpt-3.5-turbo-instruct": row["gpt35_instruct_verdict"]}
    out["model_a"], out["model_b"] = row["model_a"], row["model_b"]
    return out


def _llmbar(set_name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def convert(row: dict[str, Any]) -> dict[str, Any]:
        out = _base(row, set_name)
        out["subset"] = row["subset"]
        return out

    return convert


CONVERTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "pandalm_testset": _pandalm,
    "llmfao_crowd": _llmfao,
    "mtbench_llmbar": _llmbar("mtbench"),
    "llmbar_adversarial": _llmbar("llmbar_adversarial"),
}


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _check(rows: list[dict[str, Any]], set_name: str) -> None:
    ids = set()
    for i, r in enumerate(rows, 1):
        where = f"{set_name} line {i}"
        if r["id"] in ids:
            raise SystemExit(f"{where}: duplicate id {r['id']}")
        ids.add(r["id"])
        for key in ("query", "response_a", "response_b"):
            if not isinstance(r[key], str):
                raise SystemExit(f"{where}: {key} is not a string")
        if r["human"] not in VERDICTS:
            raise SystemExit(f"{where}: human is {r['human']!r}")
        for judge, verdict in r.get("judges", {}).items():
            if verdict is not None and verdict not in VERDICTS:
                raise SystemExit(f"{where}: judge {judge} says {verdict!r}")


FIXTURE_PER_SET = 10


def write_fixture(out: Path, target: Path) -> None:
    """A small deterministic sample for tests: per set, the 10 pairs with the smallest
    ``sha256("evalgap-fixture:" + id)`` (a fixed pseudo-random pick), in set order."""
    picked = []
    for set_name, _ in SOURCES.values():
        rows = list(_read(out / f"{set_name}.jsonl"))
        rows.sort(key=lambda r: hashlib.sha256(f"evalgap-fixture:{r['id']}".encode()).hexdigest())
        picked.extend(rows[:FIXTURE_PER_SET])
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8", newline="\n") as f:
        for r in picked:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    humans = collections.Counter(r["human"] for r in picked)
    print(f"{target}: {len(picked)} pairs ({dict(humans)}), {target.stat().st_size:,} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="?", default="../shared/data/judge_preferences")
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument(
        "--fixture", help="also write the small test sample here (tests/fixtures/judge_prefs_small.jsonl)"
    )
    args = parser.parse_args()
    src, out = Path(args.src), Path(args.out)
    if not src.is_dir():
        sys.exit(f"{src}: not a directory (pass the path of shared/data/judge_preferences)")
    (out / "licenses").mkdir(parents=True, exist_ok=True)

    for folder, (set_name, sha) in SOURCES.items():
        source = src / folder / "pairs.jsonl"
        actual = hashlib.sha256(source.read_bytes()).hexdigest()
        if actual != sha:
            sys.exit(f"{source}: sha256 {actual} is not the documented {sha}")
        rows = [CONVERTERS[folder](r) for r in _read(source)]
        _check(rows, set_name)
        target = out / f"{set_name}.jsonl"
        with target.open("w", encoding="utf-8", newline="\n") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        data = target.read_bytes()
        humans = collections.Counter(r["human"] for r in rows)
        print(
            f"{target.name}: {len(rows)} pairs (a={humans['a']}, b={humans['b']}, tie={humans['tie']}), "
            f"{len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}"
        )
    for source_name, target_name in COPIES:
        shutil.copyfile(src / source_name, out / target_name)
        print(f"copied {source_name} -> {target_name}")
    if args.fixture:
        write_fixture(out, Path(args.fixture))


if __name__ == "__main__":
    main()
