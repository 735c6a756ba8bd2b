"""The one redactor: everything evalgap sends to Label Studio or to an LLM passes through here.

No Django and no app of ours is imported, so every app (and the LLM client) can use it.

What is found (tags in brackets): secrets [SECRET] (private key blocks, JWTs, `sk-…` keys, AWS
access key ids and labelled secret keys, GitHub, Slack, Google and Stripe tokens, bearer and
Authorization values, `password: …`-style labelled values, `user:password@` in URLs), e-mail
addresses [EMAIL], IBANs passing mod-97 with their country's length [IBAN], IPv4 and IPv6
addresses, compressed and zoned forms too [IP], card numbers passing Luhn [CARD] and phone numbers,
international and local [PHONE]. Dates, year ranges, times, prices, versions, ISBNs and numbers
after "order", "invoice", "ticket"… are not phones; see `_phone_ok`.

How it stays linear on any input:
- every quantifier is bounded and no pattern nests a repetition whose splits are ambiguous
  (groups are always delimited by a character the group itself cannot contain);
- each pattern may only start where its token starts (a negative lookbehind), so a failed attempt
  costs at most the pattern's bounded length, and a successful one consumes what it read;
- private key blocks, e-mail local parts and digit groupings are walked in Python with bounds;
- a field is cut at `FIELD_MAX_CHARS` before anything is shown (see `redact`).
`benchmarks/bench_pii.py` measures this on 1 MB adversarial fields.

What people type: the recognisers read a normalised view of the text, built in one `str.translate`
pass, in which every Unicode space (no-break U+00A0, narrow no-break U+202F, thin U+2009, …) is a
space, every dash (en dash, minus sign, …) a hyphen, fullwidth forms (fullwidth digits, `＠`, `．`)
their ASCII letter and every decimal digit of any script an ASCII digit — one character for one, so
offsets do not move. Zero-width characters (U+200B…U+200F, U+2060, U+FEFF, the soft hyphen) are left
out of the view, so "jane​@example.com" is one address; a table of the cuts maps every span found
back to the original text. An address typed "jane.doe @ example.com" is found too.

Recognisers run in a fixed order over a working copy of the text. Each span found is blanked there
with filler of the same length, so a later recogniser cannot match inside it (an IP inside a
digit run, a phone inside a secret) and every offset stays that of the original text.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import sys
import threading
import unicodedata
from bisect import bisect_right
from collections import OrderedDict
from functools import lru_cache
from typing import Any, Callable, Iterable, NamedTuple

import phonenumbers
from stdnum import exceptions as stdnum_exceptions
from stdnum import iban as stdnum_iban

# Longest part of one field that is ever shown. What follows is dropped, never redacted-and-shown,
# so a pattern missing there cannot leak. 100k characters is ~25k tokens: more than an annotator
# reads and more than a grading prompt should carry.
FIELD_MAX_CHARS = 100_000
# Matching looks this far past the cap, so a secret or number that starts before the cap is seen
# whole (the longest match any recogniser makes is a JWT, < 16.5k characters).
_MARGIN = 20_000
_FILL = "\x00"  # no pattern below matches it
_CACHE_MAX_CHARS = 4096  # only short texts are memoised (a turn's text recurs in later turns' history)
# The memo is bounded by the bytes it holds, not by entries: 65 536 entries of 4 096 characters
# (and their redacted copies) were ~2 GB in a process. 64 MB holds ~8 000 of the longest texts and
# far more typical ones. EVALGAP_PII_CACHE_MAX_BYTES overrides it (read once, at import).
CACHE_MAX_BYTES = int(os.environ.get("EVALGAP_PII_CACHE_MAX_BYTES") or 64 * 1024 * 1024)

KINDS = ("SECRET", "EMAIL", "IBAN", "IP", "CARD", "PHONE")


# --- the normalised view -------------------------------------------------------------------------

def _normal_table() -> dict[int, str]:
    table = {0xFE6B: "@", 0x2212: "-", 0x3000: " "}  # small commercial at, minus sign, ideographic space
    for cp in range(0x80, 0x10000):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat == "Zs":
            table[cp] = " "
        elif cat == "Pd":
            table[cp] = "-"
        elif cat == "Nd":
            table[cp] = str(unicodedata.decimal(ch))
        if 0xFF01 <= cp <= 0xFF5E:  # fullwidth ASCII
            table[cp] = chr(cp - 0xFEE0)
    return table


_NORMAL = _normal_table()
_ZERO_WIDTH = re.compile("[\u00ad\u180e\u200b-\u200f\u2060-\u2064\u2066-\u2069\ufeff]+")


class _Cuts(NamedTuple):
    """Where zero-width runs were cut from the view: segment k starts at view[k] / original[k]."""
    view: list[int]
    original: list[int]

    def start(self, p: int) -> int:
        k = bisect_right(self.view, p) - 1
        return self.original[k] + p - self.view[k]

    def end(self, p: int) -> int:
        return self.start(p - 1) + 1


def normalise(text: str) -> tuple[str, _Cuts | None]:
    """The view the recognisers read (see the module's docstring) and its cuts (None: offsets are the text's)."""
    if text.isascii():
        return text, None
    view = text.translate(_NORMAL)
    if not _ZERO_WIDTH.search(view):
        return view, None
    parts, cuts, pos, n = [], _Cuts([], []), 0, 0
    for m in _ZERO_WIDTH.finditer(view):
        parts.append(view[pos:m.start()])
        cuts.view.append(n)
        cuts.original.append(pos)
        n += m.start() - pos
        pos = m.end()
    parts.append(view[pos:])
    cuts.view.append(n)
    cuts.original.append(pos)
    return "".join(parts), cuts


class Span(NamedTuple):
    start: int
    end: int
    kind: str


# --- secrets -------------------------------------------------------------------------------------

# (needles, pattern): a pattern runs only when one of its needles is in the text (a substring
# test at memory speed), so ordinary text pays for none of these scans.
_SECRET_TOKENS = [(needles, re.compile(p)) for needles, p in (
    (("sk-",), r"(?<![\w-])sk-[A-Za-z0-9_-]{20,300}"),        # OpenAI (sk-, sk-proj-, sk-svcacct-), Anthropic
    (("_live_", "_test_"), r"(?<![\w-])(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,250}"),  # Stripe
    (("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "APKA", "AROA"),
     r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
     r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"),
    (("xox",), r"(?<![\w-])xox[abposre]-[A-Za-z0-9-]{10,250}"),   # Slack
    (("AIza",), r"(?<![\w-])AIza[0-9A-Za-z_-]{35}"),              # Google API key
    (("eyJ",), r"(?<![\w-])eyJ[A-Za-z0-9_-]{2,4096}\.[A-Za-z0-9_-]{2,8192}\.[A-Za-z0-9_-]{0,4096}"),  # JWT
)]
# Labelled values: the label stays readable, the value (group v) goes. Needles are lower case.
_SECRET_VALUES = [(needles, re.compile(p)) for needles, p in (
    (("bearer",), r"(?i)\bbearer\s{1,3}(?P<v>[A-Za-z0-9._~+/=-]{8,4096})"),
    (("authorization",), r"(?i)\bauthorization[\"']?\s{0,3}[:=]\s{0,3}[\"']?(?:basic|bearer|token|digest)?\s{0,3}"
                         r"(?P<v>[A-Za-z0-9._~+/=-]{8,4096})"),
    (("secret",), r"(?i)(?:aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key)[\"']?\s{0,3}[:=]\s{0,3}[\"']?"
                  r"(?P<v>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"),
    (("://",), r"(?<=://)(?P<v>[^\s/:@\x00]{1,128}:[^\s/@\x00]{1,256})@"),   # user:password@host in a URL
)]
# "password: …", "api_key=…": found from each ':' or '=' by looking back for the label, which is
# far cheaper than trying a case-insensitive alternation at every position of ordinary text.
_LABEL_BEFORE = re.compile(
    r"(?i)\b(?:password|passwd|pwd|passphrase|api[_-]?key|apikey|secret[_-]?key|client[_-]?secret|"
    r"access[_-]?token|auth[_-]?token|refresh[_-]?token|secret)[\"']?\s{0,3}$")
_LABEL_VALUE = re.compile(r"\s{0,3}[\"']?(?P<v>[^\s\"'<>,;\x00]{6,256})")
_LABEL_SIGN = re.compile(r"[:=]")
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY_MAX = 8192  # a 4096-bit RSA key in PEM is ~3.3k characters
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=\s:,.-]{0,%d}" % _PEM_BODY_MAX)


def _secrets(work: str) -> Iterable[Span]:
    pos = 0
    while "PRIVATE KEY" in work and (m := _PEM_BEGIN.search(work, pos)) is not None:
        end = _PEM_END.search(work, m.end(), m.end() + _PEM_BODY_MAX + 80)
        # No END in reach: the header and everything key-like after it go (conservative).
        stop = end.end() if end else _PEM_BODY.match(work, m.end()).end()
        yield Span(m.start(), stop, "SECRET")
        pos = stop
    for needles, pattern in _SECRET_TOKENS:
        if any(n in work for n in needles):
            for m in pattern.finditer(work):
                yield Span(m.start(), m.end(), "SECRET")
    lower = work.lower()
    if any(n in lower for n in ("pass", "pwd", "key", "secret", "token")):
        for sign in _LABEL_SIGN.finditer(work):
            if _LABEL_BEFORE.search(work, max(0, sign.start() - 40), sign.start()):
                value = _LABEL_VALUE.match(work, sign.end())
                if value:
                    yield Span(value.start("v"), value.end("v"), "SECRET")
    for needles, pattern in _SECRET_VALUES:
        if any(n in lower for n in needles):
            for m in pattern.finditer(work):
                yield Span(m.start("v"), m.end("v"), "SECRET")


# --- e-mail --------------------------------------------------------------------------------------

# Anchored on "@domain": the local part is then walked back at most 64 characters (RFC 5321's
# limit), so "a@" * N or a megabyte of "a" costs one step per character.
_EMAIL_DOMAIN = re.compile(r"(?: ?(?<=\w )@ (?=\w)|@)(?:[^\W_](?:[\w-]{0,62}[^\W_])?\.){1,8}[^\W\d_]{2,24}(?!\w)")
_LOCAL_EXTRA = frozenset("._%+-'!#$&*/=?^`{|}~")


def _emails(work: str) -> Iterable[Span]:
    if "@" not in work:
        return
    floor = 0
    for m in _EMAIL_DOMAIN.finditer(work):
        at = m.start()
        start = at
        while start > max(floor, at - 64) and (work[start - 1].isalnum() or work[start - 1] in _LOCAL_EXTRA):
            start -= 1
        while start < at and work[start] == ".":
            start += 1
        if start < at:
            yield Span(start, m.end(), "EMAIL")
        floor = m.end()


# --- IBAN ----------------------------------------------------------------------------------------

# Lengths from the SWIFT IBAN registry: a candidate must have its country's exact length.
_IBAN_LENGTHS = dict(
    AD=24, AE=23, AL=28, AT=20, AZ=28, BA=20, BE=16, BG=22, BH=22, BI=27, BR=29, BY=28, CH=21, CR=22,
    CY=28, CZ=24, DE=22, DJ=27, DK=18, DO=28, EE=20, EG=29, ES=24, FI=18, FK=18, FO=18, FR=27, GB=22,
    GE=22, GI=23, GL=18, GR=27, GT=28, HR=21, HU=28, IE=22, IL=23, IQ=23, IS=26, IT=27, JO=30, KW=30,
    KZ=20, LB=28, LC=32, LI=21, LT=20, LU=20, LV=21, LY=25, MC=27, MD=24, ME=22, MK=19, MN=20, MR=27,
    MT=31, MU=30, NI=28, NL=18, NO=15, OM=23, PK=24, PL=28, PS=29, PT=25, QA=29, RO=24, RS=22, RU=33,
    SA=24, SC=31, SD=18, SE=24, SI=19, SK=24, SM=27, SO=23, ST=25, SV=28, TL=23, TN=24, TR=26, UA=29,
    VA=22, VG=24, XK=20, YE=30,
)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){10,32}")
_IBAN_GROUP = re.compile(r"[A-Za-z0-9]{1,34}")


def iban_ok(candidate: str) -> bool:
    """Its country's length, mod-97 and (python-stdnum's registry) the country's BBAN structure:
    "GB82 1234 …" fails where a British bank code must be letters."""
    s = re.sub(r"[ -]", "", candidate[:80]).upper()
    if len(s) != _IBAN_LENGTHS.get(s[:2], -1) or not s.isalnum():
        return False
    try:
        stdnum_iban.validate(s, check_country=False)
        return True
    except stdnum_exceptions.InvalidComponent:  # a country stdnum's registry lacks: mod-97 alone
        rearranged = s[4:] + s[:4]
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except stdnum_exceptions.ValidationError:
        return False


def _ibans(work: str) -> Iterable[Span]:
    pos = 0
    while (m := _IBAN.search(work, pos)) is not None:
        want = _IBAN_LENGTHS.get(m.group()[:2].upper())
        found = None
        if want:
            # The IBAN ends at a group boundary where exactly `want` characters have been read.
            count = 0
            for g in _IBAN_GROUP.finditer(work, m.start(), m.end()):
                count += len(g.group())
                if count >= want:
                    if count == want and iban_ok(work[m.start():g.end()]):
                        found = g.end()
                    break
        if found:
            yield Span(m.start(), found, "IBAN")
            pos = found
        else:
            # Not one here: an IBAN may still start at a later group inside this candidate.
            nxt = _IBAN_GROUP.match(work, m.start())
            pos = nxt.end() + 1 if nxt else m.start() + 1


# --- IP addresses --------------------------------------------------------------------------------

# IPv6 is looked for from each colon: back up over at most 4 hex digits, then match forwards.
_COLON = re.compile(r":[0-9A-Fa-f:]")
_IPV6 = re.compile(r"(?:[0-9A-Fa-f]{1,4}|:)(?::(?:\d{1,3}(?:\.\d{1,3}){3}(?!\w|\.\d)|[0-9A-Fa-f]{0,4})){1,7}"
                   r"(?:%[0-9A-Za-z_.-]{1,16})?")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?!\w|\.\d)")
_HEX = frozenset("0123456789abcdefABCDEF")


def _ipv6_ok(candidate: str) -> bool:
    addr = candidate.split("%", 1)[0]
    if not any(c.isdigit() for c in addr):  # "a::b", "dead::beef": words, not addresses
        return False
    try:
        ipaddress.IPv6Address(addr)
        return True
    except ValueError:
        return False


def _ips(work: str) -> Iterable[Span]:
    floor = 0
    for c in _COLON.finditer(work) if ":" in work else ():
        if c.start() < floor:
            continue
        start = c.start()
        while start > max(floor, c.start() - 4) and work[start - 1] in _HEX:
            start -= 1
        if start > 0 and (work[start - 1].isalnum() or work[start - 1] in "_."):
            continue  # inside a word: "std::vector", "Note:"
        m = _IPV6.match(work, start)
        if not m:
            continue
        floor = end = m.end()
        text = m.group()
        # A label glued with a colon ("IP:2001:db8::1") or a sentence's colon after it.
        if text.startswith(":") and not text.startswith("::"):
            start, text = start + 1, text[1:]
        if text.endswith(":") and not text.endswith("::"):
            end, text = end - 1, text[:-1]
        if _ipv6_ok(text):
            yield Span(start, end, "IP")
    for m in _IPV4.finditer(work):
        if m.start() > 0 and (work[m.start() - 1].isalnum() or work[m.start() - 1] in "_."):
            continue
        octets = m.group().split("/", 1)[0].split(".")
        if all(int(o) <= 255 for o in octets):
            yield Span(m.start(), m.end(), "IP")


# --- digit runs: cards and phones ----------------------------------------------------------------

# A run of digit groups joined by separators: "+1 (415) 555-2671", "4111.1111.1111.1111",
# "2026-10-01 020 7946 0958". Groups are delimited by non-digits, so a run splits one way only.
_RUN = re.compile(r"(?:\+ ?\(?\d{1,20}|\(\d{1,20}|\d{1,20})\)?(?:(?:[ \t./-]{1,3}|(?<=\))|(?=\())\(?\d{1,20}\)?){0,40}")
_DIGITS = re.compile(r"\d{1,20}")
# A keyword just before a number says what it is. "pos" words look back 32 characters, "neg"
# words (a number that names a thing) only 20: "order 2026-000123", "ISBN 0-306-40615-2".
_PHONE_WORDS = re.compile(
    r"(?i)\b(?:(?P<pos>call|calls|called|calling|phone|ph|tel|telephone|mobile|mob|cell|cellphone|"
    r"whats ?app|sms|text|fax|contact|dial|ring|reach|number|no|nr|num|helpline|hotline)|"
    r"(?P<neg>order|orders|invoice|inv|ref|reference|ticket|tracking|awb|isbn|sku|serial|model|"
    r"version|ver|id|transaction|txn|booking|pnr|po|receipt|pin|pincode|zip|postcode|"
    r"postal|amount|price|total|qty|quantity|page|pages|pp|room|flight|account|acct|iban|swift))\b")
_LETTER = re.compile(r"[^\W\d_]")
_CURRENCY_BEFORE = re.compile(r"(?i)(?:[$€£¥₹]|\b(?:rs|inr|usd|eur|gbp|chf|jpy)\.?)\s{0,2}$")


class _Group(NamedTuple):
    start: int
    end: int
    digits: str
    sep: str  # the separator text before this group ("" for the first)


_DOUBLED = str.maketrans("0123456789", "0246813579")  # 2d, minus 9 when above 9


def luhn_ok(digits: str) -> bool:
    rev = digits[::-1]
    return (sum(map(int, rev[0::2])) + sum(map(int, rev[1::2].translate(_DOUBLED)))) % 10 == 0


def _runs(work: str) -> Iterable[tuple[bool, list[_Group]]]:
    """Maximal digit runs as (starts with +, groups); runs longer than one match are joined."""
    plus, groups, last_end = False, [], -1
    for m in _RUN.finditer(work):
        if groups and m.start() != last_end:
            yield plus, groups
            groups = []
        if not groups:
            plus = m.group().startswith("+")
        prev = groups[-1].end if groups else None
        for d in _DIGITS.finditer(work, m.start(), m.end()):
            sep = work[prev:d.start()] if prev is not None else ""
            groups.append(_Group(d.start(), d.end(), d.group(), sep))
            prev = d.end()
        last_end = m.end()
    if groups:
        yield plus, groups


def _card_at(groups: list[_Group], i: int) -> int:
    """Index after the last group of a card number starting at group i, or -1.

    Shapes: one group of 13-19 digits; 4-4-4-4 (and 4-4-4-1..4); Amex 4-6-5; Diners 4-6-4.
    """
    first = groups[i].digits
    if first[0] not in "23456":
        return -1
    if len(first) != 4:
        return i + 1 if 13 <= len(first) <= 19 and luhn_ok(first) else -1
    best, digits, second = -1, first, 0
    for j in range(i + 1, min(len(groups), i + 5)):
        n = len(groups[j].digits)
        if j == i + 1:
            second = n
        elif second == 6:  # third group of 4-6-x
            if n in (4, 5) and luhn_ok(digits + groups[j].digits):
                best = j + 1
            break
        if second not in (4, 6) or second == 4 and n > 4:
            break
        digits += groups[j].digits
        if len(digits) >= 13 and second == 4 and luhn_ok(digits):
            best = j + 1
        if n != 4 and second == 4:
            break
    return best


def _is_date(a: _Group, b: _Group, c: _Group) -> bool:
    sep1, sep2 = b.sep.strip(), c.sep.strip()
    if sep1 != sep2 or sep1 not in ("-", "/", ".") or len(b.digits) > 2 or len(c.digits) not in (1, 2, 4) \
            and len(a.digits) != 4:
        return False
    x, y, z = int(a.digits), int(b.digits), int(c.digits)
    if len(a.digits) == 4:  # 2026-10-01
        return len(c.digits) <= 2 and 1 <= y <= 12 and 1 <= z <= 31
    # 01/10/2026, 10.01.26, 1-2-2026
    return len(a.digits) <= 2 and len(c.digits) in (2, 4) and 1 <= x <= 31 and 1 <= y <= 31 and min(x, y) <= 12


def _is_year_range(a: _Group, b: _Group) -> bool:
    return len(a.digits) == 4 and 1000 <= int(a.digits) <= 2099 and b.sep.strip() in ("-", "/", "–") \
        and len(b.digits) in (2, 4, 5)


def _isbn_ok(digits: str) -> bool:
    if len(digits) == 13 and digits[:3] in ("978", "979"):
        return sum(int(d) * (1 if k % 2 == 0 else 3) for k, d in enumerate(digits)) % 10 == 0
    if len(digits) == 10:
        return sum(int(d) * (10 - k) for k, d in enumerate(digits)) % 11 == 0
    return False


def _is_isbn(groups: list[_Group]) -> bool:
    """978-3-16-148410-0, 0-306-40615-2: hyphenated, check digit last and alone."""
    if len(groups[-1].digits) != 1 or not all(g.sep.strip() == "-" for g in groups[1:]):
        return False
    return _isbn_ok("".join(g.digits for g in groups))


def _context(work: str, start: int) -> str:
    """'pos', 'neg' or '' from the nearest keyword in the 32 characters before a number."""
    last, lo = None, max(0, start - 32)
    if not _LETTER.search(work, lo, start):
        return ""
    for last in _PHONE_WORDS.finditer(work, lo, start):
        pass
    if last is None:
        return ""
    if last.group("pos"):
        return "pos"
    return "neg" if last.end() >= start - 20 else ""


def _phone_ok(work: str, groups: list[_Group], intl: bool, context: str) -> bool:
    """Is this window of digit groups (8 to 15 digits, at most 6 groups) a phone number?

    "+" or "00" in front: yes. Otherwise it must look like a local number: unformatted 10 digits
    (or 11 after a trunk 0/1), or 2-6 groups of which only the first may be one digit and none
    longer than eight, no more than 12 digits. A phone word just before ("call", "mobile") also
    admits unformatted 8-9 digit numbers; a naming word ("order", "invoice", "ISBN") rules it out.
    """
    k = len(groups)
    if k == 1 and groups[0].sep in (".", ","):
        return False  # the decimals of 3.14159265358
    if intl and not _intl_possible(work[groups[0].start:groups[-1].end]):
        return False
    if any(len(g.sep.strip(" ()")) > 1 for g in groups[1:]):
        return False  # "/." or "--": a list of figures, not one number
    if not intl:
        if context == "neg":
            return False
        digits_n = sum(len(g.digits) for g in groups)
        if k == 1:
            n = len(groups[0].digits)
            if not (n == 10 or n == 11 and groups[0].digits[0] in "01" or context == "pos" and n <= 11):
                return False
        else:
            first = len(groups[0].digits)
            if digits_n > 12 or first > 5 or any(len(g.digits) > 8 or len(g.digits) == 1 for g in groups[1:]):
                return False
            if k == 2 and digits_n < 9 and context != "pos":
                return False
            seps = [g.sep.strip() or " " for g in groups[1:]]
            if "." in seps and (k < 3 or first < 2):
                return False  # 10.4.1234: a version
            if first <= 3 and all(len(g.digits) == 3 for g in groups[1:]) and len(set(seps)) == 1:
                return False  # 12 345 678: a number with thousands separators
    start, end = groups[0].start, groups[-1].end
    after = work[end:end + 2]
    if len(after) == 2 and after[0] in ".," and after[1].isdigit() or after[:1] in ("%", "€", "$", "£"):
        return False  # 12 345 678,90 or 1234567.50: an amount
    if _CURRENCY_BEFORE.search(work, max(0, start - 6), start):
        return False
    return True


@lru_cache(maxsize=4096)  # short keys (< 64 characters): a few hundred KB at most
def _intl_possible(number: str) -> bool:
    """An international number (after "+" or "00") with a country code and a length that country's
    plan allows (phonenumbers' metadata): "+999 1234 5678" and "+1 415 555 26" are not phones."""
    if number.startswith("00"):
        number = number[2:]
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse("+" + number, None))
    except phonenumbers.NumberParseException:
        return False


def _digit_runs(work: str) -> Iterable[Span]:
    for plus, groups in _runs(work):
        # A number glued to a word ("5551234x", "2nd") loses its last group, and one glued to the
        # word before it ("HKD7021645199", "abc123") its first.
        if groups[-1].end < len(work) and (work[groups[-1].end].isalpha() or work[groups[-1].end] == "_"):
            groups = groups[:-1]
        if groups and groups[0].start > 0 and (work[groups[0].start - 1].isalnum() or work[groups[0].start - 1] in "_."):
            groups, plus = groups[1:], False
        blocked = [False] * len(groups)
        i = 0
        while i < len(groups):
            j = _card_at(groups, i)
            if j > 0:
                yield Span(groups[i].start, groups[j - 1].end, "CARD")
                blocked[i:j] = [True] * (j - i)
                i = j
                continue
            if i + 2 < len(groups) and _is_date(*groups[i:i + 3]):
                blocked[i:i + 3] = [True] * 3
                i += 3
                continue
            if i + 3 < len(groups) and all(len(g.digits) == 4 for g in groups[i:i + 4]):
                blocked[i:i + 4] = [True] * 4  # card-shaped but failing Luhn: an order number, not a phone
                i += 4
                continue
            k = 5 if groups[i].digits in ("978", "979") else 4
            if i + k <= len(groups) and _is_isbn(groups[i:i + k]):
                blocked[i:i + k] = [True] * k
                i += k
                continue
            if i + 1 < len(groups) and _is_year_range(*groups[i:i + 2]):
                blocked[i:i + 2] = [True] * 2
                i += 2
                continue
            i += 1
        # Phones in what is left: the longest acceptable window from each group on.
        i = 0
        while i < len(groups):
            if blocked[i]:
                i += 1
                continue
            intl = (plus and i == 0) or groups[i].digits.startswith("00") and len(groups[i].digits) <= 4
            context = None
            found, total = -1, 0
            for j in range(i, min(len(groups), i + 6)):
                if blocked[j]:
                    break
                n = len(groups[j].digits)
                total += n
                if total > 15 or j > i and not intl and (n == 1 or n > 8) and _context(work, groups[i].start) != "pos":
                    break  # no local number has a later group of one digit or of more than eight
                if total >= 8:
                    if context is None:
                        context = _context(work, groups[i].start)
                    if _phone_ok(work, groups[i:j + 1], intl, context):
                        found = j
            if found >= 0:
                start = groups[i].start
                # "+" and an opening bracket belong to the number.
                while start > 0 and work[start - 1] in "+(" and start > groups[i].start - 3:
                    start -= 1
                if plus and i == 0 and start > 1 and work[start - 1] == " " and work[start - 2] == "+":
                    start -= 2
                end = groups[found].end
                if end < len(work) and work[end] == ")":
                    end += 1
                yield Span(start, end, "PHONE")
                i = found + 1
            else:
                i += 1


# --- driver --------------------------------------------------------------------------------------

_STAGES: list[Callable[[str], Iterable[Span]]] = [_secrets, _emails, _ibans, _ips, _digit_runs]


def _blank(work: str, spans: list[Span]) -> str:
    parts, pos = [], 0
    for s in spans:
        parts += [work[pos:s.start], _FILL * (s.end - s.start)]
        pos = s.end
    parts.append(work[pos:])
    return "".join(parts)


def _find(text: str) -> list[Span]:
    # An input NUL must not pass for a blanked span.
    work, cuts = normalise(text.replace(_FILL, " "))
    found: list[Span] = []
    for stage in _STAGES:
        spans, pos = [], 0
        for s in sorted(stage(work)):
            if s.start >= pos and s.end > s.start and _FILL not in work[s.start:s.end]:
                spans.append(s)
                pos = s.end
        if spans:
            work = _blank(work, spans)
            found += spans
    if cuts is not None:
        found = [Span(cuts.start(s.start), cuts.end(s.end), s.kind) for s in found]
    return sorted(found)


def detect(text: str, *, max_chars: int = FIELD_MAX_CHARS, margin: int = _MARGIN) -> list[Span]:
    """Spans of personal data and secrets in the part of `text` that `redact` would show."""
    if not text:
        return []
    if len(text) <= max_chars:
        return _find(text)
    return [s for s in _find(text[:max_chars + margin]) if s.start < max_chars]


def redact(text: str, *, max_chars: int = FIELD_MAX_CHARS) -> str:
    """`text` with each span replaced by its tag ("[EMAIL]", …).

    A text longer than `max_chars` is cut there: matching still reads `_MARGIN` characters past
    the cap so that a number or key straddling it is replaced whole, then nothing after the cap
    is shown except that tag, and a note says how many characters were left out.
    """
    if not text or not isinstance(text, str):
        return text
    if len(text) <= _CACHE_MAX_CHARS and max_chars >= _CACHE_MAX_CHARS:
        out = _cache.get(text)
        if out is None:
            out = _redact(text, FIELD_MAX_CHARS)
            _cache.put(text, out)
        return out
    return _redact(text, max_chars)


class _ByteBoundedCache:
    """A least-recently-used memo holding at most `max_bytes` (keys and values, as sys.getsizeof
    counts them); thread-safe. A turn's text recurs in the conversation shown with later turns."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> str | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: str, value: str) -> None:
        size = sys.getsizeof(key) + (0 if value is key else sys.getsizeof(value))
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0


_cache = _ByteBoundedCache(CACHE_MAX_BYTES)


# A field cut short by a response's budget (`Budget`) is read only this far past its cap: far enough
# for every e-mail address, phone, card and IBAN to be found whole. A longer token straddling the cap
# (a JWT) is not shown at all: the cut backs off to the whitespace before it.
_SHORT_MARGIN = 512


def _redact(text: str, max_chars: int, margin: int = _MARGIN) -> str:
    spans = detect(text, max_chars=max_chars, margin=margin)
    cut = len(text) if len(text) <= max_chars else max([max_chars] + [s.end for s in spans])
    if margin < _MARGIN and cut < len(text) and not text[cut].isspace() and not any(s.end == cut for s in spans):
        floor = max([0] + [s.end for s in spans if s.end <= cut])
        back = max(text.rfind(c, floor, cut) for c in (" ", "\n", "\t", "\r"))
        cut = back if back >= 0 else floor
    parts, pos = [], 0
    for s in spans:
        parts += [text[pos:s.start], f"[{s.kind}]"]
        pos = s.end
    parts.append(text[pos:cut])
    if cut < len(text):
        parts.append(f" [… {len(text) - cut} more characters not shown]")
    return "".join(parts)


class Budget:
    """How many characters one response may still redact in full (`redact_obj(..., budget=)`).

    Each string takes what it reads from `left`; once it is spent, every further string is cut at
    `floor` characters (the rest is "not shown", as past FIELD_MAX_CHARS), so a page of rows with
    huge fields costs at most `chars` plus `floor` per string rather than FIELD_MAX_CHARS per field.
    """

    def __init__(self, chars: int, floor: int = 1000):
        self.left, self.floor, self.cut = chars, floor, 0

    def redact(self, text: str) -> str:
        cap = min(FIELD_MAX_CHARS, max(self.floor, self.left))
        self.left -= min(len(text), cap)
        if len(text) <= cap:
            return redact(text)
        self.cut += 1
        return _redact(text, cap, _SHORT_MARGIN if cap < FIELD_MAX_CHARS else _MARGIN)


def redact_obj(obj: Any, *, max_depth: int = 32, budget: Budget | None = None, _depth: int = 0) -> Any:
    """A copy of nested JSON-like data with every string (keys too) redacted.

    Integers long enough to be a card or phone number are checked as their digits. Nesting deeper
    than `max_depth` is replaced by "[TRUNCATED]" rather than walked. With a `budget`, strings
    draw on it (see `Budget`).
    """
    one = budget.redact if budget is not None else redact
    if isinstance(obj, str):
        return one(obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, float):
        return obj
    if isinstance(obj, int):
        if abs(obj) >= 10_000_000:
            s = str(obj)
            r = redact(s)
            return obj if r == s else r
        return obj
    if _depth >= max_depth:
        return "[TRUNCATED]"
    if isinstance(obj, dict):
        return {one(k) if isinstance(k, str) else k: redact_obj(v, max_depth=max_depth, budget=budget, _depth=_depth + 1)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v, max_depth=max_depth, budget=budget, _depth=_depth + 1) for v in obj]
    return one(str(obj))


def redact_messages(messages: list[dict]) -> list[dict]:
    """Chat messages (OpenAI shape) with every content, tool call and name redacted; roles kept."""
    return [{k: (v if k == "role" else redact_obj(v)) for k, v in m.items()} for m in messages]


def pseudonym(value: str, *, key: bytes, kind: str) -> str:
    """A stable keyed pseudonym: `kind-` and 16 hex digits of HMAC-SHA256(key, kind, value).

    The same value and key always give the same pseudonym, so an annotator still sees which
    turns share a session; without the key it cannot be reversed or checked against a guess.
    """
    if not value:
        return ""
    digest = hmac.new(key, f"{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}-{digest[:16]}"
