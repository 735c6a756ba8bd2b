"""Redaction of personal data before anything leaves for Label Studio.

Patterns are deliberately conservative: card numbers must pass a Luhn check and IBANs their
mod-97 check, so order numbers and prices are not redacted by accident.
"""
import functools
import ipaddress
import re

EMAIL = re.compile(r"\b[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
IPV6 = re.compile(r"\b(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}\b")
PHONE = re.compile(r"(?<![\w+])\+?\d[\d ()./-]{6,}\d\b")


def luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except ValueError:
        return False


def _ip_ok(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
        return True
    except ValueError:
        return False


@functools.lru_cache(maxsize=65536)  # a turn's text recurs in the conversation shown with later turns
def redact(text: str) -> str:
    if not text:
        return text
    text = EMAIL.sub("[EMAIL]", text)
    text = IBAN.sub(lambda m: "[IBAN]" if iban_ok(m.group()) else m.group(), text)
    text = CARD.sub(lambda m: "[CARD]" if luhn_ok(re.sub(r"\D", "", m.group())) else m.group(), text)
    text = IPV6.sub(lambda m: "[IP]" if _ip_ok(m.group()) else m.group(), text)
    text = IPV4.sub(lambda m: "[IP]" if _ip_ok(m.group()) else m.group(), text)
    # Phones last: a card or IBAN already replaced cannot be mistaken for one.
    # 8 to 15 digits: E.164's longest number has 15, so a 16-digit non-card stays as it is.
    text = PHONE.sub(lambda m: "[PHONE]" if 8 <= sum(c.isdigit() for c in m.group()) <= 15 else m.group(), text)
    return text


def redact_messages(messages: list[dict]) -> list[dict]:
    """Chat messages with every text content redacted (what is sent to an LLM)."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            m = {**m, "content": redact(content)}
        out.append(m)
    return out
