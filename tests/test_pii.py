"""core.pii: what is redacted, what is not, the field cap, nested data, chat messages, pseudonyms.

No database and no service: the redactor imports nothing of Django. Speed is in
benchmarks/bench_pii.py, never asserted here.
"""
import importlib.util
from pathlib import Path

import pytest

from core import pii
from core.pii import detect, pseudonym, redact, redact_messages, redact_obj

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text, kind", [
    ("jane.doe@example.com", "EMAIL"), ("first+tag@mail.example.co.uk", "EMAIL"), ("JANE@EXAMPLE.ORG", "EMAIL"),
    ("josé.müller@beispiel.de", "EMAIL"),
    ("+44 20 7946 0958", "PHONE"), ("+1 (415) 555-2671", "PHONE"), ("+14155552671", "PHONE"),
    ("+33 1 23 45 67 89", "PHONE"), ("0044 20 7946 0958", "PHONE"), ("+44 (0)20 7946 0958", "PHONE"),
    ("(415) 555-2671", "PHONE"), ("415-555-2671", "PHONE"), ("415.555.2671", "PHONE"), ("4155552671", "PHONE"),
    ("020 7946 0958", "PHONE"), ("07700 900123", "PHONE"), ("01 23 45 67 89", "PHONE"), ("030 1234567", "PHONE"),
    ("4111 1111 1111 1111", "CARD"), ("4111-1111-1111-1111", "CARD"), ("4111.1111.1111.1111", "CARD"),
    ("4111111111111111", "CARD"), ("3782 822463 10005", "CARD"), ("5500 0000 0000 0004", "CARD"),
    ("GB82 WEST 1234 5698 7654 32", "IBAN"), ("gb82west12345698765432", "IBAN"), ("DE89 3704 0044 0532 0130 00", "IBAN"),
    ("192.168.10.20", "IP"), ("10.0.0.0/24", "IP"), ("::1", "IP"), ("fe80::1%eth0", "IP"),
    ("2001:db8::8a2e:370:7334", "IP"), ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "IP"), ("::ffff:192.0.2.1", "IP"),
    ("sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD", "SECRET"),
    ("sk-proj-Ab3_dE-fGhIjKlMnOpQrStUvWxYz0123456789", "SECRET"),
    ("AKIAIOSFODNN7EXAMPLE", "SECRET"), ("ASIAIOSFODNN7EXAMPLE", "SECRET"),
    ("ghp_0123456789abcdefghijABCDEFGHIJ012345", "SECRET"), ("xoxb-123456789012-abcdefghijKLMN", "SECRET"),
    ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "SECRET"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "SECRET"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM\n-----END RSA PRIVATE KEY-----", "SECRET"),
])
def test_each_kind_is_found_whole_in_a_sentence(text, kind):
    sentence = f"Hello, here it is: {text}, thanks."
    spans = detect(sentence)
    start = sentence.index(text)
    assert [(s.start, s.end, s.kind) for s in spans] == [(start, start + len(text), kind)]
    assert text not in redact(sentence) and f"[{kind}]" in redact(sentence)


@pytest.mark.parametrize("label, value", [
    ("aws_secret_access_key = ", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("Authorization: Bearer ", "abc.def-123_456~xyz"),
    ("password: ", "hunter2!x"), ('"api_key": "', "0123abcd4567"),
    ("postgres://bob:", "s3cret"),
])
def test_labelled_secrets_lose_the_value_and_keep_the_label(label, value):
    text = f"config {label}{value}@db.example.com" if label.startswith("postgres") else f"config {label}{value} end"
    out = redact(text)
    assert value not in out and "[SECRET]" in out
    assert label.split(":")[0].strip('"') in out


@pytest.mark.parametrize("text", [
    "on 2026-10-01", "on 01/10/2026", "on 2026.10.01", "at 10:30:00", "at 12:30", "in 1993-1999", "in 2003-04",
    "order 12345678", "order 2026-000123", "invoice 4455667788", "ISBN 978-3-16-148410-0", "ISBN 0-306-40615-2",
    "version 1.2.3", "v2.10.4.1234", "costs $1,234.56", "costs 12 345 678,90 €", "Rs. 1234567890",
    "card 4111 1111 1111 1112", "10 000 000 people", "pi is 3.14159265358", "He hit .282/.324/.451 (94 OPS+)",
    "std::vector and a::b", "Note: 12:00", "the 978-0-306-40615-7 edition", "serial 20261001",
    "scikit-learn uses sk-learn", "a token of 5", "78/72/6 KING SIZE", "(1943-01-19)",
])
def test_dates_times_orders_versions_prices_and_isbns_are_left_alone(text):
    assert detect(text) == [], [text[s.start:s.end] for s in detect(text)]


NBSP, NNBSP, THIN, EN, ZWSP = "\u00a0", "\u202f", "\u2009", "\u2013", "\u200b"


def _fw(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


@pytest.mark.parametrize("text, kind", [
    (f"4111{NBSP}1111{NBSP}1111{NBSP}1111", "CARD"), (f"4111{NNBSP}1111{NNBSP}1111{NNBSP}1111", "CARD"),
    (f"4111{THIN}1111{THIN}1111{THIN}1111", "CARD"), (f"4111{EN}1111{EN}1111{EN}1111", "CARD"),
    (_fw("4111 1111 1111 1111"), "CARD"), (f"4111{ZWSP}1111{ZWSP}1111{ZWSP}1111", "CARD"),
    (f"+44{NBSP}20{NBSP}7946{NBSP}0958", "PHONE"), (f"+33{NNBSP}1{NNBSP}23{NNBSP}45{NNBSP}67{NNBSP}89", "PHONE"),
    (f"020{THIN}7946{THIN}0958", "PHONE"), (f"415{EN}555{EN}2671", "PHONE"), (_fw("+44 20 7946 0958"), "PHONE"),
    (f"415{ZWSP}555{ZWSP}2671", "PHONE"), ("٠٢٠ ٧٩٤٦ ٠٩٥٨", "PHONE"),  # Arabic-Indic digits
    ("jane.doe＠example.com", "EMAIL"), (f"jane.doe{ZWSP}@example.com", "EMAIL"), ("jane.doe @ example.com", "EMAIL"),
    (_fw("jane.doe@example.com"), "EMAIL"), (f"GB82{NBSP}WEST{NBSP}1234{NBSP}5698{NBSP}7654{NBSP}32", "IBAN"),
    (_fw("GB82WEST12345698765432"), "IBAN"),
])
def test_what_keyboards_and_phones_type_is_found_whole(text, kind):
    """Unicode spaces, dashes, fullwidth forms and zero-width characters: the recognisers read the
    normalised view and the span covers exactly the original characters."""
    sentence = f"Hello, here it is: {text}, thanks."
    start = sentence.index(text)
    assert [(s.start, s.end, s.kind) for s in detect(sentence)] == [(start, start + len(text), kind)]
    assert redact(sentence) == f"Hello, here it is: [{kind}], thanks."


def test_zero_width_characters_elsewhere_keep_every_offset_right():
    text = f"{ZWSP}a{ZWSP}{ZWSP}b jane{ZWSP}@example.com c{ZWSP} +44 20{ZWSP}7946 0958{ZWSP}."
    assert redact(text) == f"{ZWSP}a{ZWSP}{ZWSP}b [EMAIL] c{ZWSP} [PHONE]{ZWSP}."


@pytest.mark.parametrize("text", [
    f"in 2019{EN}2021", f"costs 1{NBSP}234{NBSP}567,90{NBSP}€", f"on 2026{EN}10{EN}01", "meet @ noon",
    f"see pages 12{EN}19", "+999 1234 5678 points", "GB82 1234 1234 5698 7654 32", _fw("version 1.2.3"),
])
def test_normalised_lookalikes_are_left_alone(text):
    assert detect(text) == [], [text[s.start:s.end] for s in detect(text)]


def test_a_phone_next_to_a_date_is_still_found():
    assert redact("2026-10-01 020 7946 0958") == "2026-10-01 [PHONE]"
    assert redact("call me 9876543210 or 7021645199") == "call me [PHONE] or [PHONE]"


def test_a_card_inside_a_longer_digit_run_is_found():
    assert redact("ref 12 4111 1111 1111 1111 2222") == "ref 12 [CARD] 2222"


def test_an_iban_after_a_lookalike_is_found():
    assert redact("ref AB12 GB82 WEST 1234 5698 7654 32 please") == "ref AB12 [IBAN] please"


def test_a_nul_in_the_input_does_not_hide_or_create_a_span():
    assert redact("mail jane\x00doe@example.com\x00 now") == "mail jane\x00[EMAIL]\x00 now"


def test_nothing_past_the_cap_is_shown_and_a_straddling_item_goes_whole():
    email = "jane.doe@example.com"
    filler = "word " * 30
    # the e-mail starts 10 characters before the cap and ends after it
    text = filler[:90] + email + " tail secret sk-" + "x" * 40
    out = redact(text, max_chars=100)
    assert out.startswith(filler[:90] + "[EMAIL]")
    assert "tail" not in out and "sk-" not in out and "example" not in out
    assert out.endswith(f"[… {len(text) - 110} more characters not shown]")


def test_the_cap_applies_to_huge_fields():
    text = "a@" * 600_000 + " jane.doe@example.com"
    out = redact(text)
    assert len(out) < pii.FIELD_MAX_CHARS + 100 and "jane" not in out


def test_redact_obj_walks_nested_json_keys_included():
    obj = {"user": {"email": "jane.doe@example.com", "phones": ["+44 20 7946 0958", 4155552671]},
           "jane.doe@example.com": 1, "n": 3, "ok": True, "none": None, "pi": 3.14, "card": 4111111111111111,
           "deep": [[[[{"ip": "10.1.2.3"}]]]]}
    out = redact_obj(obj)
    assert out == {"user": {"email": "[EMAIL]", "phones": ["[PHONE]", "[PHONE]"]}, "[EMAIL]": 1, "n": 3, "ok": True,
                   "none": None, "pi": 3.14, "card": "[CARD]", "deep": [[[[{"ip": "[IP]"}]]]]}
    assert obj["user"]["email"] == "jane.doe@example.com"  # a copy, the input untouched


def test_redact_obj_stops_at_the_depth_limit():
    deep: list = ["jane.doe@example.com"]
    for _ in range(100):
        deep = [deep]
    out = redact_obj(deep, max_depth=10)
    flat = repr(out)
    assert "jane" not in flat and "[TRUNCATED]" in flat


def test_redact_messages_redacts_every_content_and_keeps_roles():
    messages = [
        {"role": "system", "content": "You grade answers. Admin: ops@example.com"},
        {"role": "user", "content": [{"type": "text", "text": "my card is 4111 1111 1111 1111"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"ip": "10.0.0.7"}'}}]},
        {"role": "user", "name": "jane.doe@example.com", "content": "call +44 20 7946 0958"},
    ]
    out = redact_messages(messages)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"] == "You grade answers. Admin: [EMAIL]"
    assert out[1]["content"] == [{"type": "text", "text": "my card is [CARD]"}]
    assert out[2]["tool_calls"][0]["function"]["arguments"] == '{"ip": "[IP]"}'
    assert out[3] == {"role": "user", "name": "[EMAIL]", "content": "call [PHONE]"}
    assert messages[0]["content"].endswith("ops@example.com")


def test_pseudonyms_are_stable_keyed_and_kind_scoped():
    a = pseudonym("sess-42", key=b"k1", kind="session")
    assert a == pseudonym("sess-42", key=b"k1", kind="session")
    assert a.startswith("session-") and len(a) == len("session-") + 16
    assert a != pseudonym("sess-42", key=b"k2", kind="session")
    assert a[8:] != pseudonym("sess-42", key=b"k1", kind="user")[5:]
    assert pseudonym("", key=b"k1", kind="user") == ""


def test_core_pii_imports_nothing_of_django_or_the_apps():
    source = (REPO / "core" / "pii.py").read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in imports if any(
        name in line for name in ("django", "production", "labelling", "taxonomy", "testsets", "generation"))]


def _eval_module():
    spec = importlib.util.spec_from_file_location("pii_eval", REPO / "benchmarks" / "pii_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_planted_pii_recall_and_clean_turn_false_positives_hold():
    """The README's numbers, as a floor: each kind's recall on the planted set and no false
    positive on the example logs' clean turns (benchmarks/pii_eval.py)."""
    ev = _eval_module()
    result = ev.recall()
    for kind, (found, n) in result["per_kind"].items():
        assert found / n >= 0.98, (kind, found, n, [m for m in result["misses"] if m[0] == kind][:5])
    fp = ev.false_positives()
    assert fp["texts"] > 10_000 and fp["false"] == []


def test_the_planted_set_is_the_same_on_every_run():
    ev = _eval_module()
    assert list(ev.planted())[:50] == list(ev.planted())[:50]


def test_a_budget_cut_field_shows_no_part_of_a_token_straddling_its_cap():
    jwt = "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0" * 40 + ".sig"
    budget = pii.Budget(0, floor=40)
    out = budget.redact("the token is " + jwt + " and more text after it")
    assert "eyJ" not in out or "[SECRET]" in out
    assert "eyJzdWIi" not in out and out.endswith("more characters not shown]")
    # An address across the cap is found whole and replaced whole.
    out = pii.Budget(0, floor=20).redact("write to me at jane.doe@example.com please, soon")
    assert out.startswith("write to me at [EMAIL]") and "jane" not in out
    # A long token with no whitespace before it: nothing of it is shown.
    out = pii.Budget(0, floor=20).redact("x" * 5000)
    assert "x" not in out.split("[")[0] and budget.cut == 1
