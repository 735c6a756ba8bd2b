"""JSON Lines files read with their line numbers: blank lines are skipped, and a line that is not a
JSON object stops the read with an error naming it (each caller words it for its own command)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


class JsonLineError(ValueError):
    def __init__(self, line_no: int, reason: str):
        super().__init__(f"line {line_no}: {reason}")
        self.line_no, self.reason = line_no, reason


def json_objects(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of `path` (UTF-8)."""
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise JsonLineError(no, f"not JSON ({e})") from None
            if not isinstance(obj, dict):
                raise JsonLineError(no, "expected a JSON object")
            yield no, obj
