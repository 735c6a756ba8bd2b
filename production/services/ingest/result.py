from __future__ import annotations

from dataclasses import asdict, dataclass


class IngestError(Exception):
    """The input as a whole cannot be read (missing file, unknown format)."""


@dataclass
class IngestResult:
    """What one ingest did: lines read; turns created; turns and mirrored answers already there; lines
    rejected; events stored; mirrored answers (shadow lines) stored."""

    read: int = 0
    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    events: int = 0
    shadow: int = 0

    def add(self, other: "IngestResult") -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict:
        return asdict(self)
