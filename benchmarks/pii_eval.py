"""How well does core.pii find personal data, and how often does it redact what is not?

    .venv/bin/python benchmarks/pii_eval.py            # table for the README
    .venv/bin/python benchmarks/pii_eval.py --json     # one machine-readable line
    .venv/bin/python benchmarks/pii_eval.py --show-fp  # every redaction on clean turns, to inspect

Recall: generated PII of each kind, in several formats, is planted into real turns from
examples/*.jsonl (a query or an answer, at a word boundary, with a neutral carrier such as
"({x})" — no "call me at" to help). A planted item counts as found only when every character of
its sensitive part is inside a redacted span (any tag); a partial redaction is a miss. For
labelled secrets ("password: …", "Authorization: Bearer …") the sensitive part is the value.
Each kind also has the shapes people's keyboards and phones produce (no-break, narrow no-break and thin
spaces, en dashes, fullwidth digits and `＠`, zero-width spaces, " @ "), which the redactor reads
through its normalised view. Everything is generated from a fixed seed, so the set is the same on every run.

False positives: every query and answer of the example logs is redacted as it is. Each redacted
span is a false positive unless the text really holds PII there; the spans judged real are listed
in TRUE_PII below with the reason, after reading each of them (--show-fp prints them all).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import string
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.pii import detect  # noqa: E402

SEED = 20261130
PER_FORMAT = 40
CARRIERS = ["{x}", "see {x}", "({x})", "{x}.", "- {x},", '"{x}"', "{x}?", "[{x}]"]

# Spans on the clean example logs that are real PII (judged by reading each in context).
TRUE_PII = {
    # HINT3 holds real shoppers' queries to three chatbots. Shoppers typed their mobile numbers
    # and e-mail addresses; the dataset replaced them with placeholders of the same shape
    # (7021645199, 9876543210, dummy@gmail.com, aaronnyzil.dsouza401@gmail.com…). Each stands for a
    # customer's contact detail, so redacting it is right.
    "HINT3": "every e-mail address, and every ten-digit number, in a shopper's query",
    # CAsT answers are web passages; phone numbers printed there are real numbers.
    "CAsT": "North-American numbers written (973) 862-4820 in a passage",
}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = p + z * z / (2 * n)
    r = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, (c - r) / d), min(1.0, (c + r) / d))


def clean_turns() -> list[tuple[str, str, str]]:
    """(turn id, field, text) for every non-empty query and answer of the example logs."""
    out = []
    for path in sorted((REPO / "examples").glob("*.jsonl")):
        for line in path.open(encoding="utf-8"):
            rec = json.loads(line)
            for field in ("query", "response"):
                if rec.get(field):
                    out.append((rec["id"], field, rec[field]))
    return out


# --- generators: each returns (text to insert, (start, end) of its sensitive part) -------------

def _digits(r: random.Random, n: int) -> str:
    return "".join(r.choice(string.digits) for _ in range(n))


def _luhn_complete(prefix: str, length: int, r: random.Random) -> str:
    body = prefix + _digits(r, length - len(prefix) - 1)
    for check in string.digits:
        candidate = body + check
        rev = candidate[::-1]
        total = sum(int(d) for d in rev[0::2]) + sum(sum(divmod(int(d) * 2, 10)) for d in rev[1::2])
        if total % 10 == 0:
            return candidate
    raise AssertionError


def _group(s: str, sizes: list[int], sep: str) -> str:
    out, pos = [], 0
    for n in sizes:
        out.append(s[pos:pos + n])
        pos += n
    return sep.join(out)


def _fullwidth(s: str) -> str:
    """ASCII letters, digits and signs as their fullwidth forms (U+FF01…U+FF5E)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def whole(x: str) -> tuple[str, tuple[int, int]]:
    return x, (0, len(x))


def labelled(label: str, value: str) -> tuple[str, tuple[int, int]]:
    return label + value, (len(label), len(label) + len(value))


FIRST = ["jane", "omar", "li", "maria", "sven", "aoife", "kwame", "priya", "jose", "yuki"]
LAST = ["doe", "haddad", "wei", "garcia", "larsen", "byrne", "mensah", "sharma", "silva", "tanaka"]
DOMAINS = ["example.com", "mail.example.co.uk", "uni-example.edu", "example.org", "gmail.com", "bank.example.fr"]


def emails(r):
    f, l, d = r.choice(FIRST), r.choice(LAST), r.choice(DOMAINS)
    return {
        "first.last@domain": whole(f"{f}.{l}@{d}"),
        "first+tag@sub.domain": whole(f"{f}+{r.choice(['news', 'x1', 'shop'])}@{d}"),
        "f_last99@domain": whole(f"{f[0]}_{l}{r.randint(1, 99)}@{d}"),
        "UPPER@DOMAIN": whole(f"{f}.{l}@{d}".upper()),
        "unicode local": whole(f"{f}.müller@{d}"),
        # How people type (issue #19): a fullwidth at sign, a zero-width space, spaces around "@".
        "fullwidth ＠": whole(f"{f}.{l}＠{d}"),
        "zero-width space before @": whole(f"{f}.{l}\u200b@{d}"),
        "spaced ' @ '": whole(f"{f}.{l} @ {d}"),
    }


def phones(r):
    us = f"{r.randint(201, 989)}{r.randint(201, 989)}{_digits(r, 4)}"
    uk = "20" + _digits(r, 8)
    fr = str(r.randint(1, 7)) + _digits(r, 8)
    de = "30" + _digits(r, 7)
    inm = str(r.randint(6, 9)) + _digits(r, 9)
    return {
        "E.164 +14155552671": whole("+1" + us),
        "+1 (415) 555-2671": whole(f"+1 ({us[:3]}) {us[3:6]}-{us[6:]}"),
        "+44 20 7946 0958": whole(f"+44 {uk[:2]} {uk[2:6]} {uk[6:]}"),
        "+33 1 23 45 67 89": whole("+33 " + _group(fr, [1, 2, 2, 2, 2], " ")),
        "+49 30 1234567": whole(f"+49 {de[:2]} {de[2:]}"),
        "+91 98765 43210": whole(f"+91 {inm[:5]} {inm[5:]}"),
        "0044 20 7946 0958": whole(f"0044 {uk[:2]} {uk[2:6]} {uk[6:]}"),
        "(415) 555-2671": whole(f"({us[:3]}) {us[3:6]}-{us[6:]}"),
        "415-555-2671": whole(f"{us[:3]}-{us[3:6]}-{us[6:]}"),
        "415.555.2671": whole(f"{us[:3]}.{us[3:6]}.{us[6:]}"),
        "020 7946 0958": whole(f"0{uk[:2]} {uk[2:6]} {uk[6:]}"),
        "07700 900123": whole(f"07{_digits(r, 3)} {_digits(r, 6)}"),
        "01 23 45 67 89": whole("0" + _group(fr, [1, 2, 2, 2, 2], " ")),
        "9876543210 (unformatted mobile)": whole(inm),
        "030 1234567": whole(f"0{de[:2]} {de[2:]}"),
        "+44 20 7946 0958 no-break spaces": whole(f"+44\u00a0{uk[:2]}\u00a0{uk[2:6]}\u00a0{uk[6:]}"),
        "+33 1 23 45 67 89 narrow no-break": whole("+33\u202f" + _group(fr, [1, 2, 2, 2, 2], "\u202f")),
        "020 7946 0958 thin spaces": whole(f"0{uk[:2]}\u2009{uk[2:6]}\u2009{uk[6:]}"),
        "415–555–2671 en dashes": whole(f"{us[:3]}\u2013{us[3:6]}\u2013{us[6:]}"),
        "fullwidth digits": whole(_fullwidth(f"+44 {uk[:2]} {uk[2:6]} {uk[6:]}")),
        "zero-width spaces": whole(f"{us[:3]}\u200b{us[3:6]}\u200b{us[6:]}"),
    }


def cards(r):
    visa = _luhn_complete("4", 16, r)
    mc = _luhn_complete(str(r.randint(51, 55)), 16, r)
    amex = _luhn_complete(r.choice(["34", "37"]), 15, r)
    disc = _luhn_complete("6011", 16, r)
    return {
        "visa no separators": whole(visa),
        "visa spaces": whole(_group(visa, [4, 4, 4, 4], " ")),
        "mastercard dashes": whole(_group(mc, [4, 4, 4, 4], "-")),
        "mastercard dots": whole(_group(mc, [4, 4, 4, 4], ".")),
        "amex 4-6-5": whole(_group(amex, [4, 6, 5], " ")),
        "discover dashes": whole(_group(disc, [4, 4, 4, 4], "-")),
        "visa no-break spaces": whole(_group(visa, [4, 4, 4, 4], "\u00a0")),
        "visa narrow no-break": whole(_group(visa, [4, 4, 4, 4], "\u202f")),
        "mastercard thin spaces": whole(_group(mc, [4, 4, 4, 4], "\u2009")),
        "mastercard en dashes": whole(_group(mc, [4, 4, 4, 4], "\u2013")),
        "visa fullwidth digits": whole(_fullwidth(_group(visa, [4, 4, 4, 4], " "))),
        "visa zero-width spaces": whole(_group(visa, [4, 4, 4, 4], "\u200b")),
    }


IBAN_BBAN = {"GB": ("WEST", 14), "DE": ("", 18), "FR": ("", 23), "NL": ("ABNA", 10), "ES": ("", 20),
             "IT": ("X", 22), "CH": ("", 17), "BE": ("", 12)}


def _iban(country: str, r: random.Random) -> str:
    letters, n = IBAN_BBAN[country]
    bban = letters + _digits(r, n)
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - num % 97:02d}{bban}"


def ibans(r):
    iban = _iban(r.choice(sorted(IBAN_BBAN)), r)
    grouped = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
    return {
        "compact": whole(iban),
        "groups of 4": whole(grouped),
        "lower case grouped": whole(grouped.lower()),
        "lower case compact": whole(iban.lower()),
        "groups of 4, no-break spaces": whole(grouped.replace(" ", "\u00a0")),
        "fullwidth": whole(_fullwidth(iban)),
    }


def ips(r):
    v4 = ".".join(str(r.randint(1, 254)) for _ in range(4))
    groups = [f"{r.randint(1, 0xffff):x}" for _ in range(8)]
    return {
        "IPv4": whole(v4),
        "IPv4 private": whole(f"192.168.{r.randint(0, 255)}.{r.randint(1, 254)}"),
        "IPv4 CIDR": whole(f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.0/24"),
        "IPv6 full": whole(":".join(groups)),
        "IPv6 compressed": whole(f"2001:db8::{groups[0]}:{groups[1]}"),
        "IPv6 ::1": whole("::1"),
        "IPv6 link-local zone": whole(f"fe80::{groups[2]}%eth{r.randint(0, 3)}"),
        "IPv4-mapped IPv6": whole(f"::ffff:{v4}"),
    }


def _rand(r, alphabet, n):
    return "".join(r.choice(alphabet) for _ in range(n))


B64URL = string.ascii_letters + string.digits + "-_"
ALNUM = string.ascii_letters + string.digits


def secrets(r):
    jwt = "eyJ" + _rand(r, B64URL, 30) + ".eyJ" + _rand(r, B64URL, 60) + "." + _rand(r, B64URL, 43)
    pem_body = "\n".join(_rand(r, ALNUM + "+/", 64) for _ in range(5))
    return {
        "OpenAI sk-": whole("sk-" + _rand(r, ALNUM, 48)),
        "OpenAI sk-proj-": whole("sk-proj-" + _rand(r, B64URL, 120)),
        "AWS access key id": whole(r.choice(["AKIA", "ASIA"]) + _rand(r, string.ascii_uppercase + string.digits, 16)),
        "AWS secret (labelled)": labelled("aws_secret_access_key = ", _rand(r, ALNUM + "/+", 40)),
        "GitHub ghp_": whole("ghp_" + _rand(r, ALNUM, 36)),
        "Slack xoxb-": whole(f"xoxb-{_digits(r, 12)}-{_digits(r, 12)}-{_rand(r, ALNUM, 24)}"),
        "Google AIza": whole("AIza" + _rand(r, B64URL, 35)),
        "JWT": whole(jwt),
        "Bearer header": labelled("Authorization: Bearer ", _rand(r, B64URL + ".", 40)),
        "private key block": whole(f"-----BEGIN PRIVATE KEY-----\n{pem_body}\n-----END PRIVATE KEY-----"),
        "password: (labelled)": labelled("password: ", _rand(r, ALNUM + "!#%&*", 12)),
        "URL credentials": (lambda u, p: (f"postgres://{u}:{p}@db.example.com/app",
                                          (11, 11 + len(u) + 1 + len(p))))(r.choice(FIRST), _rand(r, ALNUM, 14)),
    }


KINDS = {"EMAIL": emails, "PHONE": phones, "CARD": cards, "IBAN": ibans, "IP": ips, "SECRET": secrets}


def planted(seed: int = SEED, per_format: int = PER_FORMAT):
    """Yield (kind, format, text, (start, end) of the sensitive part in text)."""
    r = random.Random(seed)
    turns = [t for _, _, t in clean_turns() if len(t) < 2000]
    for kind, gen in KINDS.items():
        formats = list(gen(random.Random(0)))
        for fmt in formats:
            for _ in range(per_format):
                value, (a, b) = gen(r)[fmt]
                carrier = r.choice(CARRIERS)
                inserted = carrier.replace("{x}", value)
                off = carrier.index("{x}")
                host = r.choice(turns)
                spaces = [i for i, c in enumerate(host) if c == " "] or [len(host)]
                at = r.choice(spaces + [0, len(host)])
                left = host[:at] + (" " if at else "")
                text = left + inserted + (" " if at < len(host) else "") + host[at:].lstrip(" ")
                start = len(left) + off
                yield kind, fmt, text, (start + a, start + b)


def covered(spans, a: int, b: int) -> bool:
    need = a
    for s in spans:
        if s.start <= need < s.end:
            need = s.end
            if need >= b:
                return True
    return need >= b


def recall() -> dict:
    per_kind, per_format = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
    misses = []
    for kind, fmt, text, (a, b) in planted():
        ok = covered(detect(text), a, b)
        for bucket in (per_kind[kind], per_format[(kind, fmt)]):
            bucket[0] += ok
            bucket[1] += 1
        if not ok:
            misses.append((kind, fmt, text[max(0, a - 20):b + 20]))
    return {"per_kind": dict(per_kind), "per_format": {f"{k}/{f}": v for (k, f), v in per_format.items()},
            "misses": misses}


def false_positives() -> dict:
    texts = clean_turns()
    spans = []
    for tid, field, text in texts:
        for s in detect(text):
            spans.append((tid, field, s.kind, text[s.start:s.end], text[max(0, s.start - 40):s.end + 20]))
    real = [x for x in spans if _is_true_pii(x)]
    false = [x for x in spans if not _is_true_pii(x)]
    return {"texts": len(texts), "spans": spans, "true": real, "false": false,
            "texts_with_fp": len({(t, f) for t, f, *_ in false})}


def _is_true_pii(span) -> bool:
    """TRUE_PII, as code (every span it accepts was read in context: --show-fp lists them)."""
    tid, field, kind, value, _ = span
    digits = "".join(c for c in value if c.isdigit())
    if tid.startswith("hint3-") and field == "query":
        return kind == "EMAIL" or kind == "PHONE" and len(digits) == 10 and value.isdigit()
    return tid.startswith("cast-") and kind == "PHONE" and len(digits) == 10 and value.startswith("(")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--show-fp", action="store_true")
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args()
    rec = recall()
    fp = false_positives()
    if args.show_fp:
        for tid, field, kind, value, ctx in fp["spans"]:
            mark = "TRUE" if _is_true_pii((tid, field, kind, value, ctx)) else "FP  "
            print(f"{mark} {kind:6} {tid} {field}: {value!r}  …{ctx!r}…")
    if args.show_misses:
        for kind, fmt, ctx in rec["misses"]:
            print(f"MISS {kind:6} {fmt}: …{ctx!r}…")
    total_k = sum(k for k, _ in rec["per_kind"].values())
    total_n = sum(n for _, n in rec["per_kind"].values())
    n_texts, n_fp = fp["texts"], fp["texts_with_fp"]
    summary = {
        "recall": {k: {"found": f, "n": n, "rate": f / n, "ci95": wilson(f, n)} for k, (f, n) in rec["per_kind"].items()},
        "recall_overall": {"found": total_k, "n": total_n, "rate": total_k / total_n, "ci95": wilson(total_k, total_n)},
        "recall_per_format": {k: {"found": f, "n": n} for k, (f, n) in rec["per_format"].items()},
        "clean_texts": n_texts, "redactions_on_clean": len(fp["spans"]), "judged_true_pii": len(fp["true"]),
        "false_positive_spans": len(fp["false"]), "false_positive_by_kind": dict(Counter(x[2] for x in fp["false"])),
        "texts_with_fp": n_fp, "fp_rate": n_fp / n_texts, "fp_rate_ci95": wilson(n_fp, n_texts),
    }
    if args.json:
        print(json.dumps(summary))
        return
    print("| kind | found / planted | recall (95 % CI) |\n|---|---:|---|")
    for k, v in summary["recall"].items():
        print(f"| {k} | {v['found']} / {v['n']} | {v['rate']:.1%} ({v['ci95'][0]:.1%}–{v['ci95'][1]:.1%}) |")
    o = summary["recall_overall"]
    print(f"| all | {o['found']} / {o['n']} | {o['rate']:.1%} ({o['ci95'][0]:.1%}–{o['ci95'][1]:.1%}) |")
    weak = {k: v for k, v in summary["recall_per_format"].items() if v["found"] < v["n"]}
    print(f"\nformats below 100 %: {weak or 'none'}")
    lo, hi = summary["fp_rate_ci95"]
    print(f"\nclean texts: {n_texts}; redactions: {len(fp['spans'])}, judged real PII: {len(fp['true'])}, "
          f"false positives: {len(fp['false'])} {summary['false_positive_by_kind']}; texts with a false positive: "
          f"{n_fp} = {n_fp / n_texts:.2%} (95 % CI {lo:.2%}–{hi:.2%})")


if __name__ == "__main__":
    main()
