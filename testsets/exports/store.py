"""The files a frozen version keeps, named by its sha256, from which every export is made.

- ``canonical/<sha256>.jsonl``: each item's canonical JSON (sorted keys), one a line, by key: the bytes
  the version's sha256 covers, and exactly its JSONL export.
- ``canonical/<sha256>.parquet``: exactly its Parquet export (encoding and compressing 100k items takes
  longer than the 1 s an export may take here, so it is done once).
- ``canonical/<sha256>.arrow``: an Arrow IPC file (read memory-mapped) with one row per line, in the
  same order: the items' Parquet/HF columns, and where each field's JSON text sits in the .jsonl: one
  16-byte Arrow string view per field and row (``_v_<field>``: length, then the bytes themselves when
  12 or fewer, else their first 4 and their offset in the record batch's lines). The JSON formats
  (RAGAS, DeepEval, promptfoo) and the CSV's JSON cells are then the canonical pieces of each item put
  in another order: ``assemble`` lays out the views of a format's pieces (fields and the constant keys
  between them) and Arrow copies them into the output in one pass. Because the pieces are the
  canonical bytes, the output is byte-identical to serialising each item with orjson.
- ``canonical/<sha256>.json``: a manifest (rows, sizes, the Parquet file's sha256) checked before use.

All four are written in one pass by ``StoreWriter`` while the freeze hashes the items: each field is
serialised once with orjson and the canonical line is those pieces between their keys (the same bytes
as ``orjson.dumps(item, OPT_SORT_KEYS)``), so where every piece sits is known exactly. A writer thread
encodes, compresses, writes and hashes a batch while the next one is read and serialised. A row whose
contexts are not a list of text, or whose conversation is not a list of {role, content} text messages,
is not ``_plain``: the JSON writers make it one at a time from ``rows.py``.

A version frozen before the store existed gets it on its first export (written from the database and
checked against the version's sha256); so does one whose files are missing or do not fit together.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import orjson
from django.conf import settings

from ..models import ITEM_FIELDS
from ..selectors import TestSetError
from .rows import arrow_row, arrow_schema

SORTED = tuple(sorted(ITEM_FIELDS))  # the order of the fields in a canonical line
MARKERS = tuple((b'{"' if i == 0 else b',"') + f.encode() + b'":' for i, f in enumerate(SORTED))
PROV = SORTED.index("provenance")
# Rows per record batch (and per chunk the writers process): bounded memory at freeze and export.
BATCH_ROWS = 8192
# A batch's lines must stay addressable with the 32-bit offsets of Arrow string views.
BATCH_BYTES = 1 << 30
PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": ["source", "verdict", "stratum",
                                                             "failure_modes.list.element"]}
# The canonical line, with each field's JSON in its place (SORTED order).
LINE = b"".join(m.replace(b"%", b"%%") + b"%b" for m in MARKERS) + b"}"


class StoreDamaged(Exception):
    """A file of the store does not have the bytes it was written with: write the store again."""


def folder() -> Path:
    return Path(settings.MEDIA_ROOT) / "exports" / "canonical"


def canonical_path(sha256: str) -> Path:
    return folder() / f"{sha256}.jsonl"


def store_schema():
    import pyarrow as pa

    return pa.schema(list(arrow_schema()) + [("_line", pa.int64()), ("_length", pa.int32()), ("_plain", pa.bool_())]
                     + [(f"_v_{f}", pa.binary(16)) for f in SORTED]
                     + [("_v_context_items", pa.list_(pa.binary(16))), ("_v_message_items", pa.list_(pa.binary(16)))])


_SORT = orjson.OPT_SORT_KEYS
_STR = {str}
_MESSAGE = {"role", "content"}


def fields_json(item: dict) -> tuple[tuple[bytes, ...], tuple[list[int], list[int]] | None]:
    """Each field's canonical JSON, in SORTED order; and, when the item is plain (its contexts a list of
    text, its conversation a list of {role, content} text messages), the JSON length of each context
    and of each message's content and role. The JSON of those lists is then made from its elements:
    the same bytes orjson writes for them."""
    dumps = orjson.dumps
    contexts, conversation = item["contexts"], item["conversation"]
    plain = (type(contexts) is list and set(map(type, contexts)) <= _STR and type(conversation) is list
             and all(type(m) is dict and m.keys() == _MESSAGE and type(m["role"]) is str
                     and type(m["content"]) is str for m in conversation))
    if plain:
        elements = list(map(dumps, contexts))
        contexts_json = b"[" + b",".join(elements) + b"]"
        messages = [(dumps(m["content"]), dumps(m["role"])) for m in conversation]
        conversation_json = b"[" + b",".join(b'{"content":%b,"role":%b}' % m for m in messages) + b"]"
        lengths = (list(map(len, elements)), [len(part) for m in messages for part in m])
    else:
        contexts_json, conversation_json, lengths = dumps(contexts, option=_SORT), dumps(conversation, option=_SORT), None
    return (contexts_json, conversation_json, dumps(item["failure_modes"], option=_SORT),
            dumps(item["inclusion_probability"]), dumps(item["key"]), dumps(item["provenance"], option=_SORT),
            dumps(item["query"]), dumps(item["reference_answer"]), dumps(item["response"]), dumps(item["source"]),
            dumps(item["stratum"]), dumps(item["verdict"])), lengths


class StoreWriter:
    """Takes items in key order; writes the four files under temporary names, hashing the canonical
    bytes. ``finish()`` names them by that sha256 and returns it."""

    def __init__(self, where: Path | None = None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.folder = where or folder()
        self.folder.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        self._tmp = {ext: self.folder / f".store-{token}.{ext}" for ext in ("jsonl", "arrow", "parquet", "json")}
        self._jsonl = open(self._tmp["jsonl"], "wb")
        self._hash = hashlib.sha256()
        # Native files: Arrow writes them without taking the GIL (a Python file object would make it
        # wait for this thread at every write).
        self._arrow_file = pa.OSFile(str(self._tmp["arrow"]), "wb")
        self._arrow = pa.ipc.new_file(self._arrow_file, store_schema())
        self._parquet = pq.ParquetWriter(str(self._tmp["parquet"]), arrow_schema(), **PARQUET_OPTIONS)
        self._items: list[dict] = []
        self._lines: list[bytes] = []
        self._lengths: list[int] = []  # of each field's JSON, SORTED order, row after row
        # Of plain rows: the JSON length of each context, then of each message's content and role, and
        # how many of each a row has (0 for rows not plain).
        self._contexts: list[int] = []
        self._context_counts: list[int] = []
        self._messages: list[int] = []
        self._message_counts: list[int] = []
        self._plain: list[bool] = []
        self._pending = 0
        self._offset = 0
        self.rows = 0
        # The writer thread: Arrow encodes, compresses and writes the Parquet and Arrow files without the
        # GIL while this thread reads and serialises the next batch (one batch waits at most).
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._write_batches, name="store-writer", daemon=True)
        self._thread.start()

    def add(self, item: dict) -> None:
        parts, lengths = fields_json(item)
        line = LINE % parts
        self._items.append(item)
        self._lines.append(line)
        self._lengths.extend(map(len, parts))
        self._plain.append(lengths is not None)
        contexts, messages = lengths or ((), ())
        self._contexts.extend(contexts)
        self._context_counts.append(len(contexts))
        self._messages.extend(messages)
        self._message_counts.append(len(messages) // 2)
        self._pending += len(line) + 1
        if len(self._items) >= BATCH_ROWS or self._pending >= BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if not self._items:
            return
        items, lines = self._items, self._lines
        n = len(lines)
        blob = b"\n".join(lines) + b"\n"
        lens = np.fromiter(map(len, lines), np.int64, n)
        starts = np.zeros(n, np.int64)
        np.cumsum(lens[:-1] + 1, out=starts[1:])
        lengths = np.fromiter(self._lengths, np.int64, n * len(SORTED)).reshape(n, len(SORTED))
        ends = np.cumsum(lengths + np.array([len(m) for m in MARKERS]), axis=1)
        assert (ends[:, -1] == lens - 1).all(), "a canonical line is its fields' JSON between their keys"
        plain = np.array(self._plain, bool)
        data = np.frombuffer(blob, np.uint8)
        views = {f: make_views(data, starts + value_starts(ends, k), lengths[:, k]) for k, f in enumerate(SORTED)}
        context_items = _context_items(data, starts + value_starts(ends, 0), self._context_counts, self._contexts)
        message_items = _message_items(data, starts + value_starts(ends, 1), self._message_counts, self._messages)
        typed = _typed_columns(items)
        typed["provenance"] = from_views(views["provenance"], n, pa.py_buffer(blob), string=True).cast(pa.string())
        columns = ([typed[f] for f in ITEM_FIELDS]
                   + [pa.array(starts + self._offset), pa.array(lens.astype(np.int32)), pa.array(plain)]
                   + [pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(views[f])])
                      for f in SORTED] + [context_items, message_items])
        self._items, self._lines, self._lengths, self._plain = [], [], [], []
        self._contexts, self._context_counts, self._messages, self._message_counts = [], [], [], []
        self._pending = 0
        view = memoryview(blob)
        for at in range(0, len(blob), 1 << 20):  # 1 MB writes: far cheaper here than one of 30 MB
            self._jsonl.write(view[at:at + (1 << 20)])
        self._hash.update(blob)
        self._put(pa.record_batch(columns, schema=store_schema()))
        self._offset += len(blob)
        self.rows += n

    def _put(self, work) -> None:
        while True:
            if self._failed is not None:
                raise self._failed
            try:
                self._queue.put(work, timeout=0.5)
                return
            except queue.Full:
                continue

    def _write_batches(self) -> None:
        while (work := self._queue.get()) is not None:
            if self._failed is not None:
                continue  # drain: the adding thread raises the error
            batch = work
            try:
                # Two calls that release the GIL for all their work: few hand-overs with the adding thread.
                self._parquet.write_batch(batch.select(list(ITEM_FIELDS)))
                self._arrow.write_batch(batch)
            except BaseException as e:  # noqa: BLE001 - handed to the adding thread
                self._failed = e

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def finish(self) -> str:
        self._flush()
        self._stop()
        if self._failed is not None:
            raise self._failed
        if not self.rows:
            self._parquet.write_table(arrow_schema().empty_table())
        self._arrow.close()
        self._arrow_file.close()
        self._parquet.close()
        self._jsonl.close()
        sha = self._hash.hexdigest()
        manifest = {"sha256": sha, "rows": self.rows, "jsonl_bytes": self._offset,
                    "arrow_bytes": self._tmp["arrow"].stat().st_size, "arrow_sha256": file_sha256(self._tmp["arrow"]),
                    "parquet_sha256": file_sha256(self._tmp["parquet"])}
        self._tmp["json"].write_text(json.dumps(manifest, sort_keys=True))
        # The content names the files: a freeze that rolls back leaves nothing wrong behind, and two
        # writers of the same version write the same bytes. The manifest goes last: it says "complete".
        for ext in ("jsonl", "arrow", "parquet", "json"):
            os.replace(self._tmp[ext], self.folder / f"{sha}.{ext}")
        return sha

    def abort(self) -> None:
        self._failed = self._failed or RuntimeError("aborted")
        try:
            self._stop()
        finally:
            for closing in (self._arrow.close, self._arrow_file.close, self._parquet.close, self._jsonl.close):
                try:
                    closing()
                except Exception:  # noqa: BLE001 - already failing; the temporary files go below
                    pass
            for path in self._tmp.values():
                path.unlink(missing_ok=True)


def store_write(items: Iterable[dict], where: Path | None = None) -> tuple[str, int]:
    """Write the store of ``items`` (dicts of ITEM_FIELDS in key order); (sha256, rows)."""
    writer = StoreWriter(where)
    try:
        for item in items:
            writer.add(item)
        return writer.finish(), writer.rows
    except BaseException:
        writer.abort()
        raise


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _typed_columns(items: list[dict]) -> dict:
    """The Parquet/HF columns but provenance: all at once when the values have those types (and every
    message has a role and a content); else normalised one row at a time, as rows.arrow_row does."""
    import pyarrow as pa

    schema = arrow_schema()
    fields = [f for f in ITEM_FIELDS if f != "provenance"]
    try:
        arrays = {f: pa.array([it[f] for it in items], schema.field(f).type) for f in fields}
        conv = arrays["conversation"]
        if not any(arrays[f].null_count for f in ("contexts", "conversation", "failure_modes")) and not any(
                conv.values.field(k).null_count for k in ("role", "content")):
            return arrays
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, AttributeError):
        pass
    rows = [arrow_row(it) for it in items]
    return {f: pa.array([r[f] for r in rows], schema.field(f).type) for f in fields}


def value_starts(ends: np.ndarray, k: int) -> np.ndarray:
    """Where value k starts in its line, given where each value ends."""
    return np.full(len(ends), len(MARKERS[0]), np.int64) if k == 0 else ends[:, k - 1] + len(MARKERS[k])


def _items_list(counts: np.ndarray, views: np.ndarray):
    import pyarrow as pa

    first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(first), pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), len(views), [None, pa.py_buffer(views)]))


def _element_starts(list_starts: np.ndarray, counts: np.ndarray, lengths: np.ndarray):
    """Where each element of each row's JSON list starts ("[" then elements with a comma between),
    and its row."""
    row = np.repeat(np.arange(len(counts)), counts)
    first = np.concatenate([[0], np.cumsum(counts)])
    before = np.concatenate([[0], np.cumsum(lengths + 1)])  # each element and its comma
    return list_starts[row] + 1 + before[:-1] - before[first[:-1]][row]


def _context_items(data: np.ndarray, list_starts: np.ndarray, counts: list[int], lengths: list[int]):
    """Views of each context's text, inside the quotes of its JSON string (promptfoo joins them)."""
    counts, lengths = np.array(counts, np.int64), np.array(lengths, np.int64)
    at = _element_starts(list_starts, counts, lengths)
    return _items_list(counts, make_views(data, at + 1, lengths - 2))


def _message_items(data: np.ndarray, list_starts: np.ndarray, counts: list[int], lengths: list[int]):
    """Views of each message's role then content text, inside their quotes (promptfoo writes them
    "role: content"): a message is {"content":C,"role":R}."""
    counts = np.array(counts, np.int64)
    content, role = np.array(lengths, np.int64).reshape(-1, 2).T
    at = _element_starts(list_starts, counts, content + role + len(b'{"content":,"role":}'))
    content_at, role_at = at + len(b'{"content":') + 1, at + len(b'{"content":') + content + len(b',"role":') + 1
    views = np.empty((len(at), 2, 16), np.uint8)
    views[:, 0] = make_views(data, role_at, role - 2)
    views[:, 1] = make_views(data, content_at, content - 2)
    return _items_list(counts * 2, views.reshape(-1, 16))


# -- Arrow string views ------------------------------------------------------------------------------

def make_views(data: np.ndarray, start: np.ndarray, length: np.ndarray, buffer_index: int = 0) -> np.ndarray:
    """(n, 16) Arrow binary views of data[start:start+length] (data: the buffer numbered ``buffer_index``
    of the array they will belong to): the length, then the bytes when <= 12, else the first 4 bytes,
    the buffer index and the offset."""
    n = len(start)
    views = np.zeros((n, 16), np.uint8)
    if n == 0:
        return views
    length = length.astype(np.int32)
    if len(data) >= 12:
        # the 12 bytes from each start (a strided view of data: no index matrix); the last few
        # starts, within 12 bytes of the end, read a window that ends there and are shifted back
        windows = np.lib.stride_tricks.sliding_window_view(data, 12)
        top = len(data) - 12
        head = windows[np.minimum(start, top)]
        late = np.flatnonzero(start > top)
        for i in late:
            head[i] = np.concatenate([data[start[i]:], np.zeros(12 - (len(data) - start[i]), np.uint8)])
        head[np.arange(12)[None, :] >= length[:, None]] = 0
        views[:, 4:16] = head
    elif len(data):
        padded = np.concatenate([data, np.zeros(12, np.uint8)])
        head = padded[start[:, None] + np.arange(12)]
        head[np.arange(12)[None, :] >= length[:, None]] = 0
        views[:, 4:16] = head
    words = views.view(np.int32)
    words[:, 0] = length
    long = length > 12
    words[long, 2] = buffer_index
    words[long, 3] = start[long]
    return views


def from_views(views, n: int, *data_buffers, string: bool = False):
    """A binary_view (or string_view) array of ``n`` views (n x 16 bytes) over ``data_buffers``."""
    import pyarrow as pa

    kind = pa.string_view() if string else pa.binary_view()
    return pa.Array.from_buffers(kind, n, [None, pa.py_buffer(views), *data_buffers])


# -- reading -------------------------------------------------------------------------------------------

@dataclass
class Chunk:
    """One record batch of the store, and the canonical bytes of its lines (what its views point at)."""

    batch: object  # pyarrow.RecordBatch
    data: object  # pyarrow.Buffer

    def __len__(self) -> int:
        return self.batch.num_rows

    def column(self, field: str):
        return self.batch.column(field)

    def views(self, field: str) -> np.ndarray:
        """(n, 16) uint8: the stored views of ``field``'s JSON text (zero copy)."""
        col = self.batch.column(f"_v_{field}")
        return np.frombuffer(col.buffers()[1], np.uint8)[col.offset * 16:(col.offset + len(col)) * 16].reshape(-1, 16)

    def fragment(self, field: str, as_type=None):
        """Each row's ``field`` as its JSON text in the canonical line (binary, or ``as_type``)."""
        import pyarrow as pa

        text = as_type is not None and pa.types.is_string(as_type)
        return from_views(self.views(field), len(self), self.data, string=text).cast(as_type or pa.binary())

    def items(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(offsets per row, (m, 16) views) of a list-of-views column: ``_v_context_items`` (each
        context's text) or ``_v_message_items`` (each message's role, then its content)."""
        col = self.batch.column(column)
        offsets = col.offsets.to_numpy().astype(np.int64)
        values = col.values
        views = np.frombuffer(values.buffers()[1], np.uint8)[values.offset * 16:(values.offset + len(values)) * 16]
        return offsets - offsets[0], views.reshape(-1, 16)[offsets[0]:offsets[-1]]

    @property
    def plain(self) -> np.ndarray:
        return self.batch.column("_plain").to_numpy(zero_copy_only=False)

    def line(self, i: int) -> bytes:
        start = self.batch.column("_line")[i].as_py() - self.batch.column("_line")[0].as_py()
        return self.data[start:start + self.batch.column("_length")[i].as_py()].to_pybytes()


class Store:
    def __init__(self, base: Path, sha256: str):
        import pyarrow as pa

        self.sha256 = sha256
        self.canonical_path = base / f"{sha256}.jsonl"
        self.parquet_path = base / f"{sha256}.parquet"
        self.arrow_path = base / f"{sha256}.arrow"
        self.manifest = json.loads((base / f"{sha256}.json").read_text())
        self._data = pa.memory_map(str(self.canonical_path)).read_buffer()
        self._arrow_size = self.arrow_path.stat().st_size
        self._reader = pa.ipc.open_file(pa.memory_map(str(self.arrow_path)))

    @property
    def rows(self) -> int:
        return self.manifest["rows"]

    def consistent(self) -> bool:
        """The files are those the manifest describes, and the last row's line ends where the .jsonl does."""
        m = self.manifest
        if (m.get("sha256") != self.sha256 or "arrow_sha256" not in m or self._reader.schema != store_schema() or m["jsonl_bytes"] != self._data.size
                or m["arrow_bytes"] != self._arrow_size or not self.parquet_path.exists()):
            return False
        batches = self._reader.num_record_batches
        if batches == 0:
            return m["rows"] == 0 and self._data.size == 0
        last = self._reader.get_batch(batches - 1)
        return last.num_rows > 0 and (last.column("_line")[-1].as_py() + last.column("_length")[-1].as_py() + 1
                                      == self._data.size)

    def verify(self) -> None:
        """Every file against its digest: the .jsonl against the version's sha256 (named by it), the
        others against the manifest. Raises StoreDamaged."""
        for path, expected in ((self.canonical_path, self.sha256), (self.arrow_path, self.manifest["arrow_sha256"]),
                               (self.parquet_path, self.manifest["parquet_sha256"])):
            if file_sha256(path) != expected:
                raise StoreDamaged(f"{path.name} no longer has the bytes it was written with")

    def chunks(self) -> Iterator[Chunk]:
        for i in range(self._reader.num_record_batches):
            batch = self._reader.get_batch(i)
            if not batch.num_rows:
                continue
            first = batch.column("_line")[0].as_py()
            stop = batch.column("_line")[-1].as_py() + batch.column("_length")[-1].as_py() + 1
            yield Chunk(batch, self._data.slice(first, stop - first))


def store_open(version, *, where: Path | None = None) -> Store:
    """The store of a frozen ``version``; written from the database first if it is missing or its
    files do not fit together (a version frozen before the store existed, a deleted or cut file)."""
    from ..services.versions import iter_items

    base = where or folder()
    if (base / f"{version.sha256}.json").exists():
        try:
            store = Store(base, version.sha256)
            if store.consistent() and store.rows == version.item_count:
                return store
        except (OSError, ValueError, KeyError):  # pyarrow.ArrowInvalid is a ValueError: not an Arrow file
            pass
    sha, _ = store_write(iter_items(version), base)
    if sha != version.sha256:
        raise TestSetError(f"version: {version.testset.name} v{version.number}'s items no longer hash to its "
                           f"sha256: not exported")
    return Store(base, sha)


def store_discard(sha256: str, where: Path | None = None) -> None:
    """Forget a damaged store (the manifest first: without it the rest is not used)."""
    base = where or folder()
    for ext in ("json", "arrow", "parquet", "jsonl"):
        (base / f"{sha256}.{ext}").unlink(missing_ok=True)
