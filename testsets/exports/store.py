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

All four are written in one pass by ``StoreWriter`` while the freeze hashes the items. Finding the
pieces costs no JSON parsing: the length of each value's JSON text is computed from the typed columns
(a string's length plus its escapes, counted with numpy), and every computed boundary is checked to
hold the next key (``,"query":``) of the line. A row where that check fails (a conversation message
with keys other than role/content, a context that is not text) gets its boundaries from orjson and is
marked not ``_plain``: the JSON writers make those rows one at a time from ``rows.py``.

A version frozen before the store existed gets it on its first export (written from the database and
checked against the version's sha256); so does one whose files are missing or do not fit together.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import orjson
from django.conf import settings

from ..services.versions import ITEM_FIELDS, TestSetError
from .rows import arrow_row, arrow_schema, dumps

SORTED = tuple(sorted(ITEM_FIELDS))  # the order of the fields in a canonical line
MARKERS = tuple((b'{"' if i == 0 else b',"') + f.encode() + b'":' for i, f in enumerate(SORTED))
PROV = SORTED.index("provenance")
# Rows per record batch (and per chunk the writers process): bounded memory at freeze and export.
BATCH_ROWS = 16384
# A batch's lines must stay addressable with the 32-bit offsets of Arrow string views.
BATCH_BYTES = 1 << 30
PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": ["source", "verdict", "stratum",
                                                             "failure_modes.list.element"]}

# JSON escapes orjson writes: 1 extra byte for \" \\ \b \t \n \f \r, 5 for the other control
# characters (\u00XX). Nothing else is escaped (not DEL, not U+2028).
_ESCAPE_EXTRA = np.zeros(256, np.uint8)
_ESCAPE_EXTRA[:32] = 5
_ESCAPE_EXTRA[[0x08, 0x09, 0x0A, 0x0C, 0x0D, 0x22, 0x5C]] = 1
_LISTS = ("contexts", "conversation", "failure_modes")
_STRINGS = tuple(f for f in SORTED if f not in _LISTS + ("inclusion_probability", "provenance"))


class StoreDamaged(Exception):
    """A file of the store does not have the bytes it was written with: write the store again."""


def folder() -> Path:
    return Path(settings.MEDIA_ROOT) / "exports" / "canonical"


def canonical_path(sha256: str) -> Path:
    return folder() / f"{sha256}.jsonl"


def store_schema():
    import pyarrow as pa

    return pa.schema(list(arrow_schema()) + [("_line", pa.int64()), ("_length", pa.int32()), ("_plain", pa.bool_())]
                     + [(f"_v_{f}", pa.binary(16)) for f in SORTED] + [("_v_context_items", pa.list_(pa.binary(16)))])


# -- writing -------------------------------------------------------------------------------------------

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
        self._sink = pa.OSFile(str(self._tmp["arrow"]), "wb")
        self._arrow = pa.ipc.new_file(self._sink, store_schema())
        self._parquet = pq.ParquetWriter(str(self._tmp["parquet"]), arrow_schema(), **PARQUET_OPTIONS)
        self._hash = hashlib.sha256()
        self._items: list[dict] = []
        self._lines: list[bytes] = []
        self._pending = 0
        self._offset = 0
        self.rows = 0

    def add(self, item: dict) -> None:
        line = dumps(item)
        self._items.append(item)
        self._lines.append(line)
        self._pending += len(line) + 1
        if len(self._items) >= BATCH_ROWS or self._pending >= BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        items, lines = self._items, self._lines
        if not items:
            return
        self._items, self._lines, self._pending = [], [], 0
        blob = b"\n".join(lines) + b"\n"
        view = memoryview(blob)
        for at in range(0, len(blob), 1 << 20):  # 1 MB writes: far cheaper here than one of 30 MB
            self._jsonl.write(view[at:at + (1 << 20)])
        self._hash.update(blob)
        n = len(lines)
        lens = np.fromiter(map(len, lines), np.int64, n)
        starts = np.zeros(n, np.int64)
        np.cumsum(lens[:-1] + 1, out=starts[1:])
        typed, plain = _typed_columns(items)
        context_lengths = _string_lengths(typed["contexts"].values)
        length = {f: _json_lengths(f, typed[f]) for f in SORTED if f not in ("provenance", "contexts")}
        length["contexts"] = _list_lengths(typed["contexts"], context_lengths)
        ends, found = _locate(blob, starts, lens, length)
        for i in np.flatnonzero(~found):
            ends[i] = _exact_ends(items[i])
        plain &= found
        data = np.frombuffer(blob, np.uint8)
        views = {f: make_views(data, starts + value_starts(ends, k), ends[:, k] - value_starts(ends, k))
                 for k, f in enumerate(SORTED)}
        context_items = _context_items(data, starts, typed["contexts"], context_lengths, plain)
        typed["provenance"] = from_views(views["provenance"], n, pa.py_buffer(blob)).cast(pa.string())
        self._parquet.write_batch(pa.record_batch([typed[f] for f in ITEM_FIELDS], schema=arrow_schema()))
        columns = ([typed[f] for f in ITEM_FIELDS]
                   + [pa.array(starts + self._offset), pa.array(lens.astype(np.int32)), pa.array(plain)]
                   + [pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(views[f])])
                      for f in SORTED] + [context_items])
        self._arrow.write_batch(pa.record_batch(columns, schema=store_schema()))
        self._offset += len(blob)
        self.rows += n

    def finish(self) -> str:
        self._flush()
        if not self.rows:
            self._parquet.write_table(arrow_schema().empty_table())
        self._arrow.close()
        self._sink.close()
        self._parquet.close()
        self._jsonl.close()
        sha = self._hash.hexdigest()
        manifest = {"sha256": sha, "rows": self.rows, "jsonl_bytes": self._offset,
                    "arrow_bytes": self._tmp["arrow"].stat().st_size,
                    "parquet_sha256": file_sha256(self._tmp["parquet"])}
        self._tmp["json"].write_text(json.dumps(manifest, sort_keys=True))
        # The content names the files: a freeze that rolls back leaves nothing wrong behind, and two
        # writers of the same version write the same bytes. The manifest goes last: it says "complete".
        for ext in ("jsonl", "arrow", "parquet", "json"):
            os.replace(self._tmp[ext], self.folder / f"{sha}.{ext}")
        return sha

    def abort(self) -> None:
        for closing in (self._arrow.close, self._sink.close, self._parquet.close, self._jsonl.close):
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


def _typed_columns(items: list[dict]):
    """The Parquet/HF columns (all but provenance) and which rows are plain (lists of text, messages of
    exactly role + content). All at once when the values have those types; else one row at a time."""
    import pyarrow as pa

    schema = arrow_schema()
    fields = [f for f in ITEM_FIELDS if f != "provenance"]
    try:
        arrays = {f: pa.array([it[f] for it in items], schema.field(f).type) for f in fields}
        conv = arrays["conversation"]
        if not any(arrays[f].null_count for f in _LISTS) and not any(
                conv.values.field(k).null_count for k in ("role", "content")):
            return arrays, np.ones(len(items), bool)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, AttributeError):
        pass
    rows = [arrow_row(it) for it in items]
    return ({f: pa.array([r[f] for r in rows], schema.field(f).type) for f in fields},
            np.fromiter((_is_plain(it) for it in items), bool, len(items)))


def _is_plain(item: dict) -> bool:
    for f in ("contexts", "failure_modes"):
        v = item[f]
        if type(v) is not list or not all(type(c) is str for c in v):
            return False
    conv = item["conversation"]
    return type(conv) is list and all(
        type(m) is dict and m.keys() == {"role", "content"} and type(m["role"]) is str
        and type(m["content"]) is str for m in conv)


def _string_lengths(arr) -> np.ndarray:
    """len(orjson.dumps(s)) of each string of ``arr``, from its buffers: its UTF-8 length, two quotes,
    and the escapes (counted at the few bytes that need one)."""
    n = len(arr)
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32)[arr.offset:arr.offset + n + 1].astype(np.int64)
    sizes = np.diff(offsets)
    out = sizes + 2
    if data_buf is not None and offsets[-1] > offsets[0]:
        extra = _ESCAPE_EXTRA[np.frombuffer(data_buf, np.uint8)[offsets[0]:offsets[-1]]]
        # one sum per non-empty string: each runs to the next one's start (empty ones between add nothing)
        full = np.flatnonzero(sizes)
        out[full] += np.add.reduceat(extra, offsets[full] - offsets[0], dtype=np.int64)
    if arr.null_count:
        out[arr.is_null().to_numpy(zero_copy_only=False)] = 4
    return out


def _list_lengths(arr, element_lengths: np.ndarray) -> np.ndarray:
    """JSON length of each list: brackets, elements, commas between them."""
    off = arr.offsets.to_numpy().astype(np.int64)
    total = np.concatenate([[0], np.cumsum(element_lengths)])
    count = np.diff(off)
    return 2 + total[off[1:]] - total[off[:-1]] + np.maximum(count - 1, 0)


def _json_lengths(field: str, arr) -> np.ndarray:
    if field in ("contexts", "failure_modes"):
        return _list_lengths(arr, _string_lengths(arr.values))
    if field == "conversation":
        content, role = arr.values.field("content"), arr.values.field("role")
        return _list_lengths(arr, len(b'{"content":,"role":}') + _string_lengths(content) + _string_lengths(role))
    if field == "inclusion_probability":
        values = arr.to_numpy(zero_copy_only=False)
        nulls = arr.is_null().to_numpy(zero_copy_only=False)
        out = np.full(len(arr), 4, np.int64)
        if (~nulls).any():
            # by bit pattern: -0.0 and 0.0 are written differently
            unique, inverse = np.unique(values[~nulls].view(np.int64), return_inverse=True)
            lengths = [len(orjson.dumps(float(u))) for u in unique.view(np.float64)]
            out[~nulls] = np.array(lengths, np.int64)[inverse]
        return out
    return _string_lengths(arr)


def value_starts(ends: np.ndarray, k: int) -> np.ndarray:
    """Where value k starts in its line, given where each value ends."""
    return np.full(len(ends), len(MARKERS[0]), np.int64) if k == 0 else ends[:, k - 1] + len(MARKERS[k])


def _locate(blob: bytes, starts: np.ndarray, lens: np.ndarray, length: dict) -> tuple[np.ndarray, np.ndarray]:
    """Where each value ends in its line (n x 12), from the computed JSON lengths: left to right up to
    provenance, right to left after it (provenance, any JSON, is what lies between). A row is found
    when every boundary holds the next key, and every string and list value starts and ends with its
    quote or bracket."""
    n = len(starts)
    ends = np.empty((n, len(SORTED)), np.int64)
    for k in range(PROV):
        ends[:, k] = value_starts(ends, k) + length[SORTED[k]]
    ends[:, -1] = lens - 1
    for k in range(len(SORTED) - 1, PROV, -1):
        ends[:, k - 1] = ends[:, k] - length[SORTED[k]] - len(MARKERS[k])
    # Every check is a few bytes expected at a position of the line: gathered and compared at once.
    at, expected = [], []
    for k in range(len(SORTED) - 1):
        at.append(ends[:, k])
        expected.append(MARKERS[k + 1])
    for k, f in enumerate(SORTED):
        if f in _STRINGS or f in _LISTS:
            first, last = (b'"', b'"') if f in _STRINGS else (b"[", b"]")
            at += [value_starts(ends, k), ends[:, k] - 1]
            expected += [first, last]
    widths = np.array([len(e) for e in expected])
    where = np.concatenate([a[:, None] + np.arange(w) for a, w in zip(at, widths)], axis=1)
    inside = ((where >= 0) & (where < lens[:, None])).all(axis=1)
    data = np.frombuffer(blob, np.uint8)
    got = data[np.where(inside[:, None], where + starts[:, None], 0)]
    found = inside & (got == np.frombuffer(b"".join(expected), np.uint8)).all(axis=1)
    return ends, found & (value_starts(ends, PROV) < ends[:, PROV])


def _context_items(data: np.ndarray, starts: np.ndarray, contexts, element_lengths: np.ndarray, plain: np.ndarray):
    """Views of each context's text inside the quotes of its JSON string, for plain rows (promptfoo
    joins them): contexts come first in a line, so the first starts at len('{"contexts":["')."""
    import pyarrow as pa

    off = contexts.offsets.to_numpy().astype(np.int64)
    count = np.diff(off)
    row = np.repeat(np.arange(len(count)), count)
    before = np.concatenate([[0], np.cumsum(element_lengths + 1)])  # each element and its comma
    within = before[:-1] - before[off[:-1]][row] if len(row) else np.zeros(0, np.int64)
    start = starts[row] + len(MARKERS[0]) + 1 + within + 1
    keep = plain[row]
    views = make_views(data, start[keep], (element_lengths - 2)[keep])
    kept = np.concatenate([[0], np.cumsum(np.where(plain, count, 0))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(kept), pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), len(views), [None, pa.py_buffer(views)]))


def _exact_ends(item: dict) -> list[int]:
    out, pos = [], 0
    for f, marker in zip(SORTED, MARKERS):
        pos += len(marker) + len(dumps(item[f]))
        out.append(pos)
    return out


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
    if len(data):
        head = data[np.minimum(start[:, None] + np.arange(12), len(data) - 1)]
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

    def context_items(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets per row, (m, 16) views): each context's text inside its JSON quotes (plain rows)."""
        col = self.batch.column("_v_context_items")
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
        self.manifest = json.loads((base / f"{sha256}.json").read_text())
        self._data = pa.memory_map(str(self.canonical_path)).read_buffer()
        self._arrow_size = (base / f"{sha256}.arrow").stat().st_size
        self._reader = pa.ipc.open_file(pa.memory_map(str(base / f"{sha256}.arrow")))

    @property
    def rows(self) -> int:
        return self.manifest["rows"]

    def consistent(self) -> bool:
        """The files are those the manifest describes, and the last row's line ends where the .jsonl does."""
        m = self.manifest
        if (m.get("sha256") != self.sha256 or self._reader.schema != store_schema() or m["jsonl_bytes"] != self._data.size
                or m["arrow_bytes"] != self._arrow_size or not self.parquet_path.exists()):
            return False
        batches = self._reader.num_record_batches
        if batches == 0:
            return m["rows"] == 0 and self._data.size == 0
        last = self._reader.get_batch(batches - 1)
        return last.num_rows > 0 and (last.column("_line")[-1].as_py() + last.column("_length")[-1].as_py() + 1
                                      == self._data.size)

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
