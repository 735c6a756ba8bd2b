"""Label Studio labelling-interface XML for evalgap, and parsing of its annotation results.

Pure functions, no Django: the caller passes failure modes as plain dicts.

Names below (object/control tag names, `$` data keys, verdict values) are a contract with
the task payload we import and with stored annotations: LS refuses a config change that renames a
control used by existing annotations, so never rename them.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from .vocabulary import VERDICTS

_VERDICT_HINTS = {
    "correct": "The served answer is right and complete",
    "partially_correct": "Right in part; something is missing or wrong",
    "incorrect": "The served answer is wrong",
    "cannot_judge": "Not enough information to judge",
}

# Task data keys the imported task must carry (see build_task_data in the Django side).
DATA_KEYS = ("conversation", "query", "response", "contexts_text", "signals_text", "reference_answer_prefill")

# Control tag names == `from_name` in annotation results.
VERDICT = "verdict"
FAILURE_MODES = "failure_modes"
REFERENCE_ANSWER = "reference_answer"
PROPOSED_FAILURE_MODE = "proposed_failure_mode"
NOTES = "notes"
_TEXT_FIELDS = (REFERENCE_ANSWER, PROPOSED_FAILURE_MODE, NOTES)


def _a(value) -> str:
    """XML attribute, quoted and escaped (&, <, >, quotes, newlines)."""
    return quoteattr(str(value), {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def _taxonomy_choices(modes: list[dict], indent: str) -> list[str]:
    active = {m["code"]: m for m in modes if m.get("active", True)}

    # An active mode whose parent is retired/unknown is re-hung under its nearest active
    # ancestor (or the root): its alias - the only thing we store - stays the same.
    by_code = {m["code"]: m for m in modes}

    def effective_parent(mode: dict) -> str | None:
        seen = {mode["code"]}
        parent = mode.get("parent")
        while parent is not None and parent not in active:
            if parent in seen or parent not in by_code:
                return None
            seen.add(parent)
            parent = by_code[parent].get("parent")
        return parent

    children: dict[str | None, list[dict]] = {}
    for mode in active.values():  # dict preserves caller order (e.g. sorted by code)
        children.setdefault(effective_parent(mode), []).append(mode)

    lines: list[str] = []

    def emit(parent: str | None, depth: int, path: tuple[str, ...]) -> None:
        for mode in children.get(parent, []):
            if mode["code"] in path:  # cycle guard
                continue
            pad = indent + "  " * depth
            attrs = f'value={_a(mode["name"])} alias={_a(mode["code"])}'
            if mode.get("description"):
                attrs += f' hint={_a(mode["description"])}'
            if children.get(mode["code"]):
                lines.append(f"{pad}<Choice {attrs}>")
                emit(mode["code"], depth + 1, path + (mode["code"],))
                lines.append(f"{pad}</Choice>")
            else:
                lines.append(f"{pad}<Choice {attrs}/>")

    emit(None, 0, ())
    return lines


def build_label_config(modes: list[dict]) -> str:
    """Build the labelling XML. `modes`: [{code, name, description, parent, active}]."""
    verdict_choices = "\n".join(
        f"      <Choice value={_a(v)} hint={_a(_VERDICT_HINTS[v])}/>" for v in VERDICTS
    )
    taxonomy = "\n".join(_taxonomy_choices(modes, "      "))
    return f"""<View>
  <View style="display: flex; gap: 1em;">
    <View style="flex: 3;">
      <Header value="Conversation before this turn" size="5"/>
      <Paragraphs name="conversation" value="$conversation" layout="dialogue" nameKey="role" textKey="content"/>
      <Header value="Query" size="5"/>
      <Text name="query" value="$query"/>
      <Header value="Served answer" size="5"/>
      <Text name="response" value="$response"/>
      <Header value="Retrieved contexts" size="5"/>
      <Text name="contexts_text" value="$contexts_text"/>
      <Header value="Signals and evidence" size="5"/>
      <Text name="signals_text" value="$signals_text"/>
    </View>
    <View style="flex: 2;">
      <Header value="Verdict" size="5"/>
      <Choices name="verdict" toName="response" choice="single" required="true" showInline="true">
{verdict_choices}
      </Choices>
      <Header value="Failure modes" size="5"/>
      <Taxonomy name="failure_modes" toName="response" showFullPath="true" pathSeparator=" / " placeholder="Pick failure modes">
{taxonomy}
      </Taxonomy>
      <Header value="Reference answer (edit the prefilled text)" size="5"/>
      <TextArea name="reference_answer" toName="response" value="$reference_answer_prefill" editable="true" maxSubmissions="1" rows="5"/>
      <Header value="Proposed new failure mode" size="5"/>
      <TextArea name="proposed_failure_mode" toName="response" editable="true" maxSubmissions="1" rows="2"/>
      <Header value="Notes" size="5"/>
      <TextArea name="notes" toName="response" editable="true" maxSubmissions="1" rows="3"/>
    </View>
  </View>
</View>
"""


def parse_annotation_result(result: list[dict]) -> dict:
    """LS annotation `result` -> {verdict, failure_modes (leaf aliases), reference_answer, proposed_failure_mode, notes}."""
    parsed = {VERDICT: None, FAILURE_MODES: [], REFERENCE_ANSWER: "", PROPOSED_FAILURE_MODE: "", NOTES: ""}
    texts: dict[str, list[str]] = {name: [] for name in _TEXT_FIELDS}
    for item in result or []:
        name, value = item.get("from_name"), item.get("value") or {}
        if name == VERDICT:
            choices = value.get("choices") or []
            parsed[VERDICT] = choices[0] if choices else None
        elif name == FAILURE_MODES:
            # Taxonomy stores one path per pick; with alias set, every element is a code.
            for path in value.get("taxonomy") or []:
                code = path[-1] if path else None
                if code and code not in parsed[FAILURE_MODES]:
                    parsed[FAILURE_MODES].append(code)
        elif name in texts:
            texts[name].extend(str(t) for t in value.get("text") or [])
    for name, parts in texts.items():
        parsed[name] = "\n".join(parts).strip()
    return parsed


def validate_annotation(parsed: dict, known_codes) -> None:
    """LS does not check values against the config server-side: do it here. Raises ValueError naming the field."""
    verdict = parsed.get(VERDICT)
    if verdict not in VERDICTS:
        raise ValueError(f"verdict: {verdict!r} is not one of {', '.join(VERDICTS)}")
    known = set(known_codes)
    unknown = [c for c in parsed.get(FAILURE_MODES) or [] if c not in known]
    if unknown:
        raise ValueError(f"failure_modes: unknown code(s) {', '.join(map(repr, unknown))}")


# --- pairwise comparisons (a project of kind "pairwise") ---------------------------------------

PAIRWISE_PICKS = ("a", "b", "tie")
PAIRWISE_DATA_KEYS = ("conversation", "query", "contexts_text", "answer_a", "answer_b")
PICK = "pick"


def build_pairwise_config() -> str:
    """Two answers side by side; people pick A, B or tie. The picks are stored by alias (a/b/tie),
    so the texts on the buttons can change without touching stored results."""
    return """<View>
  <Header value="Conversation before this turn" size="5"/>
  <Paragraphs name="conversation" value="$conversation" layout="dialogue" nameKey="role" textKey="content"/>
  <Header value="Query" size="5"/>
  <Text name="query" value="$query"/>
  <Header value="Retrieved contexts" size="5"/>
  <Text name="contexts_text" value="$contexts_text"/>
  <View style="display: flex; gap: 1em;">
    <View style="flex: 1;">
      <Header value="Answer A" size="5"/>
      <Text name="answer_a" value="$answer_a"/>
    </View>
    <View style="flex: 1;">
      <Header value="Answer B" size="5"/>
      <Text name="answer_b" value="$answer_b"/>
    </View>
  </View>
  <Header value="Which answer is better for this user?" size="5"/>
  <Choices name="pick" toName="query" choice="single" required="true" showInline="true">
    <Choice value="A is better" alias="a"/>
    <Choice value="B is better" alias="b"/>
    <Choice value="Tie: equally good or equally bad" alias="tie"/>
  </Choices>
  <Header value="Notes" size="5"/>
  <TextArea name="notes" toName="query" editable="true" maxSubmissions="1" rows="2"/>
</View>
"""


_PICK_BY_VALUE = {"a is better": "a", "b is better": "b", "tie: equally good or equally bad": "tie"}


def parse_pairwise_result(result: list[dict]) -> dict:
    """LS annotation `result` -> {pick: "a" | "b" | "tie" | None, notes}. Accepts the alias or, from
    a client that stored display values, the button text."""
    pick, notes = None, []
    for item in result or []:
        name, value = item.get("from_name"), item.get("value") or {}
        if name == PICK:
            choices = value.get("choices") or []
            if choices:
                raw = str(choices[0])
                pick = raw if raw in PAIRWISE_PICKS else _PICK_BY_VALUE.get(raw.strip().lower(), raw)
        elif name == NOTES:
            notes.extend(str(t) for t in value.get("text") or [])
    return {"pick": pick, "notes": "\n".join(notes).strip()}
