"""Streaming readers: a binary stream in, one `Item` per record out.

They never hold more than one record in memory and never raise on a bad record: a bad record
becomes a `Reject` with its line number, and the lines around it are read as usual.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import ijson
import orjson

from .contract import (DEFAULT_LIMITS, ContractError, Limits, ParsedEvent, ParsedShadow, ParsedTurn,
                       parse_messages_line, parse_record)

FORMATS = ("auto", "jsonl", "csv", "messages")
RAW_CAP = 2000  # characters of a rejected line kept for inspection


@dataclass(slots=True)
class Reject:
    line_no: int
    reason: str
    raw: str


Item = tuple[int, "ParsedTurn | ParsedEvent | ParsedShadow | Reject"]


def _raw_text(raw: bytes) -> str:
    # NUL shown as \\x00 like an undecodable byte: a database text column cannot hold it.
    return raw[:RAW_CAP * 4].decode("utf-8", errors="backslashreplace")[:RAW_CAP].replace("\x00", "\\x00")


def _lines(stream: BinaryIO, progress: Callable[[int], None] | None, cap: int) -> Iterator[tuple[int, bytes, int]]:
    """(line number, line, 0) for each line; (line number, its first bytes, its length) for a line longer
    than `cap` bytes, which is skipped in blocks without ever being held whole."""
    readline = stream.readline
    line_no = 0
    while True:
        raw = readline(cap + 1)
        if not raw:
            return
        line_no += 1
        if progress:
            progress(len(raw))
        if len(raw) > cap and not raw.endswith(b"\n"):
            n = len(raw)
            while True:
                more = readline(1 << 20)
                if progress and more:
                    progress(len(more))
                n += len(more)
                if not more or more.endswith(b"\n"):
                    break
            yield line_no, raw[:RAW_CAP * 4], n
            continue
        yield line_no, raw, 0


def _too_long(line_no: int, head: bytes, n: int, cap: int) -> Reject:
    return Reject(line_no, f"line: longer than INGEST_MAX_LINE_BYTES ({n} bytes, the limit is {cap})",
                  _raw_text(head))


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ContractError(f"line: not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})") from None


def _loads(raw: bytes):
    text = _decode(raw)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise ContractError(f"line: invalid JSON ({e})") from None


def detect_format(stream: BinaryIO, name: str = "") -> str:
    """Guess from the name, then from the first non-blank line (the stream must be peekable)."""
    lower = name.lower()
    if lower.endswith(".csv"):
        return "csv"
    head = stream.peek(65536)[:65536] if hasattr(stream, "peek") else b""
    for line in head.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(b"{") and b'"messages"' in stripped and b'"query"' not in stripped:
            return "messages"
        if stripped.startswith((b"{", b"[")):
            return "jsonl"
        return "csv"
    return "jsonl"


def parse_jsonl_line(line_no: int, raw: bytes, limits: Limits = DEFAULT_LIMITS
                     ) -> "ParsedTurn | ParsedEvent | Reject | None":
    stripped = raw.strip()
    if not stripped:
        return None
    try:
        return parse_record(_loads(stripped), limits)
    except ContractError as e:
        return Reject(line_no, str(e), _raw_text(stripped))


def read_jsonl(stream: BinaryIO, progress: Callable[[int], None] | None = None,
               limits: Limits = DEFAULT_LIMITS) -> Iterator[Item]:
    loads, JSONDecodeError = orjson.loads, orjson.JSONDecodeError
    cap = limits.max_line_bytes
    for line_no, raw, too_long in _lines(stream, progress, cap):
        if too_long:
            yield line_no, _too_long(line_no, raw, too_long, cap)
            continue
        stripped = raw.strip()
        if not stripped:
            continue
        # orjson validates UTF-8 itself: a line it reads is read exactly as decode-then-parse would.
        # A line it refuses goes the slow way, which finds the reason.
        try:
            obj = loads(stripped)
        except JSONDecodeError:
            yield line_no, parse_jsonl_line(line_no, raw, limits)
            continue
        try:
            item = parse_record(obj, limits)
        except ContractError as e:
            item = Reject(line_no, str(e), _raw_text(stripped))
        yield line_no, item


def read_messages(stream: BinaryIO, progress: Callable[[int], None] | None = None,
                  limits: Limits = DEFAULT_LIMITS) -> Iterator[Item]:
    cap = limits.max_line_bytes
    for line_no, raw, too_long in _lines(stream, progress, cap):
        if too_long:
            yield line_no, _too_long(line_no, raw, too_long, cap)
            continue
        stripped = raw.strip()
        if not stripped:
            continue
        try:
            turns = parse_messages_line(_loads(stripped), limits)
        except ContractError as e:
            yield line_no, Reject(line_no, str(e), _raw_text(stripped))
            continue
        for turn in turns:
            yield line_no, turn


def read_json_array(body: bytes | BinaryIO, limits: Limits = DEFAULT_LIMITS) -> Iterator[Item]:
    """The API accepts a JSON array too; element k is reported as line k.

    Stream-parsed (ijson): one element in memory at a time, not the whole array's objects (which
    took ~29x the body's size). Invalid JSON part-way rejects the rest of the body as "line k" (the
    element where it broke); the elements before it are kept."""
    stream = io.BytesIO(body) if isinstance(body, (bytes, bytearray, memoryview)) else body
    n = 0
    try:
        for value in ijson.items(stream, "item", use_float=True):
            n += 1
            try:
                yield n, parse_record(value, limits)
            except ContractError as e:
                yield n, Reject(n, str(e), _value_text(value))
    except ijson.JSONError as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        where = "body" if n == 0 else f"body after element {n}"
        yield n + 1, Reject(n + 1, f"{where}: invalid JSON ({reason}); the rest of the body was not read", "")


def _value_text(value) -> str:
    try:
        return orjson.dumps(value).decode()[:RAW_CAP]  # NUL comes out as \\u0000
    except orjson.JSONEncodeError:
        return "(not shown: nested too deeply to write out)"


CSV_JSON_COLUMNS = ("contexts", "events", "metadata")


class _CountingReader(io.RawIOBase):
    """Reports bytes consumed so a CSV read can drive the same progress bar."""

    def __init__(self, stream: BinaryIO, progress: Callable[[int], None] | None):
        self._stream, self._progress = stream, progress

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._stream.read(len(b))
        n = len(data)
        b[:n] = data
        if self._progress and n:
            self._progress(n)
        return n


def read_csv(stream: BinaryIO, progress: Callable[[int], None] | None = None,
             limits: Limits = DEFAULT_LIMITS) -> Iterator[Item]:
    # A field over the csv module's own limit (131,072 characters) is rejected by it as malformed CSV.
    # surrogateescape keeps a bad byte inside its field, so only that record is rejected.
    text = io.TextIOWrapper(io.BufferedReader(_CountingReader(stream, progress)), encoding="utf-8",
                            errors="surrogateescape", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    header = [h.strip().lstrip("\ufeff") for h in header]
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            line_no, start = start, reader.line_num + 1
            yield line_no, Reject(line_no, f"line: malformed CSV ({e})", "")
            continue
        line_no, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        raw = ",".join(row).encode("utf-8", errors="surrogateescape")
        try:
            yield line_no, parse_record(_csv_record(header, row, raw), limits)
        except ContractError as e:
            yield line_no, Reject(line_no, str(e), _raw_text(raw))


def _csv_record(header: list[str], row: list[str], raw: bytes) -> dict:
    _decode(raw)  # rejects the record if any cell held a byte that is not UTF-8
    if len(row) != len(header):
        raise ContractError(f"line: expected {len(header)} columns, got {len(row)}")
    record: dict = {}
    for name, cell in zip(header, row):
        if cell == "" and name not in ("response", "query"):
            continue  # an empty optional cell means "absent"
        if name in CSV_JSON_COLUMNS:
            try:
                record[name] = orjson.loads(cell)
            except orjson.JSONDecodeError:
                raise ContractError(f"{name}: expected a JSON value in the CSV cell") from None
        elif name == "latency_ms":
            try:
                record[name] = float(cell)
            except ValueError:
                raise ContractError(f"latency_ms: expected a number, got {cell[:40]!r}") from None
        else:
            record[name] = cell
    if record.get("type") in ("event", "shadow"):
        raise ContractError(f"type: {record['type']} lines are not supported in CSV; send them as JSON lines")
    return record


READERS = {"jsonl": read_jsonl, "csv": read_csv, "messages": read_messages}
