"""The redactor on adversarial fields: is it linear, and how fast?

    .venv/bin/python benchmarks/bench_pii.py                 # core.pii, 100 KB and 1 MB per input
    PYTHON_WITH_PRESIDIO benchmarks/bench_pii.py --presidio  # Presidio's pattern recognisers instead

For each input the text is built to the size asked, then matched *without* the field cap
(`core.pii._find`, what the cap protects us from) and redacted as the app does (`redact`, which cuts
at FIELD_MAX_CHARS). Linear time shows as a 1 MB / 100 KB ratio near 10; quadratic near 100.
`--sizes 100000,200000,400000,800000` prints the time at each size (time vs input size); the
ratio is always last / first.
Each measurement runs in a child process with a time limit, so a catastrophic case is reported
as "> limit" instead of hanging the run.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# name -> the unit repeated to fill the field
ADVERSARIAL = {
    "a@ (e-mail anchors)": "a@",
    "a…a@ (long local part)": "a" * 1000 + "@",
    "a@a. (domain labels)": "a@a.",
    "a.a.a (dots, no @)": "a.",
    "1␠ (digit groups)": "1 ",
    "1- (digit groups)": "1-",
    "12.34. (dotted numbers)": "12.34.",
    "digits only": "1234567890",
    "+1 ( (phone openers)": "+1 (",
    "4111 (card groups)": "4111 ",
    ":: (IPv6 colons)": "::",
    "1: (IPv6 groups)": "1:",
    "fe80::1% (zones)": "fe80::1%",
    "1.1.1. (IPv4 dots)": "1.1.1.",
    "GB82␠ (IBAN openers)": "GB82 ",
    "GB82 glued": "GB82",
    "sk- (key prefixes)": "sk-",
    "eyJ (JWT)": "eyJ",
    "eyJa. (JWT parts)": "eyJa.",
    "AKIA": "AKIA",
    "BEGIN PRIVATE KEY": "-----BEGIN RSA PRIVATE KEY-----",
    "bearer␠": "bearer ",
    "password=": "password=",
    "://a: (URL credentials)": "://a:",
    "mixed": "a@ 1- :: sk- eyJa. GB82 +1 ( 4111 1.1.1. password= ",
    # What keyboards type: the normalised view (and its cuts table, for zero-width characters).
    "4111␣nbsp (no-break groups)": "4111\u00a0",
    "1–thin (en dash, thin space)": "1\u2013\u2009",
    "fullwidth digits": "４１１１ ",
    "zero-width spaces only": "\u200b",
    "a​@ (zero-width before @)": "a\u200b@",
    "a @ (spaced at)": "a @ ",
    "１​ (fullwidth digit, zero-width)": "１\u200b",
}


def build(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def natural(size: int) -> str:
    parts = []
    for path in sorted((REPO / "examples").glob("*.jsonl")):
        for line in path.open(encoding="utf-8"):
            rec = json.loads(line)
            parts += [rec.get("query") or "", rec.get("response") or ""]
    text = " ".join(parts)
    return (text * (size // len(text) + 1))[:size]


def _ours(text: str, mode: str) -> float:
    from core import pii
    start = time.perf_counter()
    if mode == "find":
        pii._find(text)
    else:
        pii._redact(text, pii.FIELD_MAX_CHARS)
    return time.perf_counter() - start


def _presidio(text: str, mode: str) -> float:
    from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, EmailRecognizer, IbanRecognizer,
                                                          IpRecognizer, PhoneRecognizer)
    recognisers = [EmailRecognizer(), CreditCardRecognizer(), IbanRecognizer(), IpRecognizer(), PhoneRecognizer()]
    start = time.perf_counter()
    for r in recognisers:
        r.analyze(text, r.supported_entities, None)
    return time.perf_counter() - start


def _child(fn, text, mode, q):
    q.put(fn(text, mode))


def timed(fn, text: str, mode: str, limit: float) -> float | None:
    q = mp.Queue()
    p = mp.Process(target=_child, args=(fn, text, mode, q))
    p.start()
    p.join(limit)
    if p.is_alive():
        p.kill()
        p.join()
        return None
    return q.get() if not q.empty() else None


def fmt(t: float | None, limit: float) -> str:
    return f"> {limit:.0f} s" if t is None else f"{t:.3f} s"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presidio", action="store_true")
    ap.add_argument("--limit", type=float, default=60.0, help="seconds per measurement")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--only", default="", help="comma-separated parts of input names to run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    fn = _presidio if args.presidio else _ours
    rows = []
    inputs = {"natural text (example logs)": None, **ADVERSARIAL}
    for name, unit in inputs.items():
        if args.only and not any(part in name for part in args.only.split(",")):
            continue
        make = (lambda n: natural(n)) if unit is None else (lambda n, u=unit: build(u, n))
        times: list[float | None] = []
        for size in sizes:
            times.append(timed(fn, make(size), "find", args.limit) if not times or times[-1] is not None else None)
        t_small, t_big = times[0], times[-1]
        t_redact = None if args.presidio else timed(fn, make(sizes[-1]), "redact", args.limit)
        ratio = f"{t_big / t_small:.1f}" if t_small and t_big else "—"
        rows.append({"input": name, "sizes": sizes, "find_s": times, "small_s": t_small, "big_s": t_big,
                     "ratio": ratio, "redact_s": t_redact})
        print(f"| {name} | " + " | ".join(fmt(t, args.limit) for t in times) + f" | {ratio} |"
              + ("" if args.presidio else f" {fmt(t_redact, args.limit)} |"), flush=True)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
