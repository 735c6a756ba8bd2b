"""A rule-based generator for demos and teams without an LLM: variations of real failures.

Deterministic: the same seeds and the same `seed` number give the same cases. Each case keeps
the seed item(s) it came from and the rule that made it. The seed's reference answer is kept
only where the rule keeps the need the same (typos, dropped context).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

TECHNIQUES = ("typo", "truncation", "ambiguity", "dropped_context", "combined")
KEEPS_MEANING = {"typo", "dropped_context"}

_WORD = re.compile(r"[A-Za-z]{4,}")
# A run of capitalised words (a name) that does not start the sentence.
_ENTITY = re.compile(r"(?<=\s)(?:[A-Z][\w'’-]*)(?:\s+(?:of|the|de|von|[A-Z][\w'’-]*))*(?:\s+[A-Z][\w'’-]*)?")
_CLAUSE = re.compile(r"^[^,;:]{3,}?[,;:]\s+(?=\S)")
_QWORDS = {"what", "when", "where", "who", "whom", "whose", "why", "which", "how", "is", "are", "was", "were", "do",
           "does", "did", "can", "could", "will", "would", "should", "has", "have", "had", "i", "i'm"}


@dataclass(frozen=True)
class Seed:
    item_id: int
    query: str
    reference_answer: str = ""


def typo(query: str, rnd: random.Random) -> str | None:
    words = list(_WORD.finditer(query))
    if not words:
        return None
    out = query
    # Two slips in a longer query, one in a short one.
    for m in rnd.sample(words, min(len(words), 2 if len(words) > 5 else 1)):
        i = m.start() + rnd.randrange(1, len(m.group()) - 2)
        if out[i] == out[i + 1]:
            continue
        out = out[:i] + out[i + 1] + out[i] + out[i + 2:]
    return out if out != query else None


def truncation(query: str, rnd: random.Random) -> str | None:
    words = query.split()
    if len(words) < 4:
        return None
    keep = max(2, round(len(words) * rnd.uniform(0.45, 0.7)))
    return " ".join(words[:keep]) if keep < len(words) else None


def ambiguity(query: str, rnd: random.Random) -> str | None:
    for m in _ENTITY.finditer(query):
        name = m.group().strip()
        if name.lower() in _QWORDS or len(name) < 2:
            continue
        start, end = m.start(), m.start() + len(name)
        if query[max(0, start - 4):start].lower() == "the ":
            # "at the Berlin store" -> "at that store": the listener no longer knows which one.
            return query[:start - 4] + "that" + query[end:]
        if query[max(0, start - 3):start].lower() in ("in ", "at "):
            return query[:start - 3] + "there" + query[end:]  # "by card in Spain" -> "by card there"
        if name.endswith(("'s", "’s")):
            return query[:start] + ("their" if " " in name else "its") + query[end:]
        return query[:start] + ("they" if " " in name else "it") + query[end:]
    return None


def dropped_context(query: str, rnd: random.Random) -> str | None:
    m = _CLAUSE.match(query)
    if not m:
        return None
    rest = query[m.end():]
    return rest[:1].upper() + rest[1:] if len(rest.split()) >= 2 else None


def combined(a: str, b: str) -> str:
    return f"{a.rstrip(' ?.!')} and {b[:1].lower() + b[1:]}"


RULES = {"typo": typo, "truncation": truncation, "ambiguity": ambiguity, "dropped_context": dropped_context}


def generate(*, seeds: list[Seed], n: int, seed: int) -> list[dict]:
    """Up to n cases: {"query", "reference_answer", "rationale", "technique", "seed_item_ids"}."""
    seeds = sorted(seeds, key=lambda s: s.item_id)
    rnd = random.Random(f"{seed}:{','.join(str(s.item_id) for s in seeds)}")
    order = seeds[:]
    rnd.shuffle(order)
    seen = {s.query.strip().lower() for s in seeds}
    out: list[dict] = []

    def add(query: str | None, technique: str, used: list[Seed]) -> None:
        if not query or query.strip().lower() in seen or len(out) >= n:
            return
        seen.add(query.strip().lower())
        ref = used[0].reference_answer if technique in KEEPS_MEANING and len(used) == 1 else ""
        out.append({"query": query, "reference_answer": ref, "technique": technique,
                    "seed_item_ids": [s.item_id for s in used],
                    "rationale": f"{technique.replace('_', ' ')} of a real failure"
                                 f"{'s' if len(used) > 1 else ''} ({', '.join(str(s.item_id) for s in used)})"})

    # Round robin: each seed in turn, each with the next rule, so a small n still mixes rules.
    for round_ in range(len(TECHNIQUES)):
        for k, s in enumerate(order):
            technique = TECHNIQUES[(k + round_) % len(TECHNIQUES)]
            if technique == "combined":
                if len(order) > 1:
                    other = order[(k + 1 + rnd.randrange(len(order) - 1)) % len(order)]
                    add(combined(s.query, other.query), technique, [s, other])
            else:
                add(RULES[technique](s.query, rnd), technique, [s])
            if len(out) >= n:
                return out
    return out
