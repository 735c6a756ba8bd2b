"""The one chunker, and the reading thread that feeds it to a writer.

Items (line number, parsed record) are grouped into chunks of about `batch_size` records; each
chunk is written in one transaction by whichever writer the database calls for. Reading,
parsing and the writer's own preparation of a chunk (`Writer.prepare`) run on a thread of their
own, so that they overlap the database work on the chunk before.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from ...contract import ParsedEvent, ParsedShadow, ParsedTurn
from ...readers import Item, Reject


@dataclass(slots=True, eq=False)
class Chunk:
    turns: list[ParsedTurn] = field(default_factory=list)  # the first of each turn id in the chunk
    turn_lines: list[int] = field(default_factory=list)  # the line each of `turns` came from
    events: list[ParsedEvent] = field(default_factory=list)
    event_lines: list[int] = field(default_factory=list)
    shadows: list[ParsedShadow] = field(default_factory=list)  # the first for each (turn id, release)
    shadow_lines: list[int] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    duplicates: int = 0  # repeats of a turn id, or of a (turn id, release) shadow line, inside the chunk
    read: int = 0  # lines read in the whole input, up to the end of this chunk
    last: bool = False
    prepared: object = None  # what the writer made of the chunk on the reading thread


def chunked(items: Iterable[Item], batch_size: int) -> Iterator[Chunk]:
    """Group items into chunks; the last chunk (maybe empty) has `last` set."""
    chunk = Chunk()
    seen: set[str] = set()
    seen_shadows: set[tuple[str, str]] = set()
    read = 0
    last_line = None
    for line_no, item in items:
        if line_no != last_line:  # a messages line gives several turns
            read += 1
            last_line = line_no
        kind = type(item)
        if kind is ParsedTurn:
            key = item.external_id
            if key in seen:
                chunk.duplicates += 1
            else:
                seen.add(key)
                chunk.turns.append(item)
                chunk.turn_lines.append(line_no)
            # Events of a re-sent turn still count: that is how a late event can arrive too.
            if item.events:
                chunk.events.extend(item.events)
                chunk.event_lines.extend([line_no] * len(item.events))
        elif kind is Reject:
            chunk.rejects.append(item)
        elif kind is ParsedShadow:
            # The first line wins: the unique index keeps that across chunks, this inside one (a single
            # INSERT .. ON CONFLICT DO NOTHING keeps whichever row its plan meets first).
            key = (item.turn_external_id, item.release)
            if key in seen_shadows:
                chunk.duplicates += 1
            else:
                seen_shadows.add(key)
                chunk.shadows.append(item)
                chunk.shadow_lines.append(line_no)
        else:
            chunk.events.append(item)
            chunk.event_lines.append(line_no)
        if len(seen) + len(chunk.events) + len(chunk.rejects) + len(seen_shadows) >= batch_size:
            chunk.read = read
            yield chunk
            chunk = Chunk()
            seen = set()
            seen_shadows = set()
    chunk.read = read
    chunk.last = True
    yield chunk


_DONE = object()


def read_ahead(chunks: Iterable[Chunk], prepare: Callable[[Chunk], None], depth: int = 2) -> Iterator[Chunk]:
    """Iterate `chunks` on a thread of its own, calling `prepare` on each there; yield them here.

    At most `depth` prepared chunks wait, which bounds memory. The database connection is only ever
    used by the calling thread. An error on the reading thread is raised here; leaving the loop
    early stops the reading thread.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                prepare(chunk)
                if not put(chunk):
                    return
        except BaseException as e:  # handed to the calling thread, which raises it
            put(e)
            return
        put(_DONE)

    thread = threading.Thread(target=produce, name="ingest-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)
