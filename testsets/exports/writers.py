"""Each format written a column at a time from the version's store (``store.py``).

JSONL is the canonical file itself. CSV, Parquet and HF are the store's typed columns (plus, for CSV,
the JSON text of the nested fields cut from the canonical lines) written by pyarrow. RAGAS, DeepEval
and promptfoo lines are the canonical pieces of each item joined in the order of the format's keys
(sorted, as ``orjson.dumps(row, OPT_SORT_KEYS)`` writes them), with the constant keys between them:
byte for byte what serialising ``rows.py``'s dicts would give, which is what rows that are not plain
get.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import orjson

from ..models import ITEM_FIELDS, NESTED_FIELDS
from . import rows
from .store import Chunk, Store, StoreDamaged, file_sha256, from_views, make_views

# What str.strip() removes: a reference of only these is no reference (promptfoo gets no assertion).
_PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                  "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_BLANK = "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in _PY_WHITESPACE) + "]*$"


def _float_text(arr, text) -> "object":
    """``text(v)`` for each non-null float of ``arr`` (computed once per distinct value), null for null."""
    import pyarrow as pa

    values = arr.to_numpy(zero_copy_only=False)
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    out = np.full(len(arr), None, dtype=object)
    if (~nulls).any():
        # by bit pattern: -0.0 and 0.0 are written differently
        unique, inverse = np.unique(values[~nulls].view(np.int64), return_inverse=True)
        out[~nulls] = np.array([text(float(u)) for u in unique.view(np.float64)], dtype=object)[inverse]
    return pa.array(out, pa.string())


# -- csv / parquet / hf ---------------------------------------------------------------------------------

def _neutralised(arr):
    import pyarrow as pa
    import pyarrow.compute as pc

    risky = pc.is_in(pc.utf8_slice_codeunits(arr, 0, 1), value_set=pa.array(rows.FORMULA_STARTS))
    if not pc.any(risky).as_py():
        return arr
    return pc.if_else(risky, pc.binary_join_element_wise("'", arr, ""), arr)


def _csv_batch(chunk: Chunk, raw: bool):
    import pyarrow as pa

    columns = []
    for f in ITEM_FIELDS:
        if f in NESTED_FIELDS:
            columns.append(chunk.fragment(f, pa.string()))
        elif f == "inclusion_probability":
            columns.append(_float_text(chunk.column(f), repr))
        else:
            columns.append(chunk.column(f) if raw else _neutralised(chunk.column(f)))
    return pa.record_batch(columns, names=list(ITEM_FIELDS))


def write_csv(store: Store, path: Path, *, raw: bool = False, **_) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    schema = pa.schema([(f, pa.string()) for f in ITEM_FIELDS])
    # RFC 4180 (CRLF), UTF-8; pyarrow quotes every text cell, which readers take as they come.
    with pcsv.CSVWriter(str(path), schema, write_options=pcsv.WriteOptions(eol="\r\n")) as w:
        for chunk in store.chunks():
            w.write_batch(_csv_batch(chunk, raw))


def _typed(chunk: Chunk):
    return chunk.batch.select(list(ITEM_FIELDS))


def write_parquet(store: Store, path: Path, **_) -> None:
    """The file the freeze wrote (the same columns, zstd), checked against the digest it recorded."""
    shutil.copyfile(store.parquet_path, path)
    if file_sha256(path) != store.manifest["parquet_sha256"]:
        raise StoreDamaged(f"{store.parquet_path.name} no longer has the bytes it was written with")


def hf_features(schema) -> dict:
    """`datasets` Features JSON for the Arrow schema (strings, float64, lists of strings, list of
    {role, content})."""
    import pyarrow as pa

    def feature(t):
        if pa.types.is_list(t):
            return {"feature": feature(t.value_type), "_type": "List"}
        if pa.types.is_struct(t):
            return {t.field(i).name: feature(t.field(i).type) for i in range(t.num_fields)}
        return {"dtype": "float64" if pa.types.is_float64(t) else "string", "_type": "Value"}

    return {f.name: feature(f.type) for f in schema}


def write_hf(store: Store, path: Path, *, testset: str, number: int, sha256: str, **_) -> None:
    """The folder `Dataset.save_to_disk` writes, one shard: `datasets.load_from_disk(path)` reads it."""
    import pyarrow as pa

    path.mkdir(parents=True)
    schema = rows.arrow_schema()
    features = hf_features(schema)
    schema = schema.with_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    data_file = "data-00000-of-00001.arrow"
    with pa.OSFile(str(path / data_file), "wb") as sink, pa.ipc.new_stream(sink, schema) as w:
        for chunk in store.chunks():
            w.write_batch(_typed(chunk).replace_schema_metadata(schema.metadata))
    info = {"builder_name": None, "citation": "", "config_name": None,
            "description": f"evalgap test set {testset} v{number} (sha256 {sha256})",
            "features": features, "homepage": "", "license": ""}
    (path / "dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    state = {"_data_files": [{"filename": data_file}], "_fingerprint": (sha256 or "draft")[:16],
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
             "_output_all_columns": False, "_split": None}
    (path / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))


# -- ragas / deepeval / promptfoo -------------------------------------------------------------------------

class _Layout:
    """The pieces of each row's output, as Arrow string views: the canonical JSON of a field (views
    kept in the store), constants, or computed text. ``output()`` has Arrow copy every row's pieces,
    in order, into one buffer: the bytes of the file."""

    def __init__(self, chunk: Chunk):
        self.chunk, self.n = chunk, len(chunk)
        self._buffers = [chunk.data, None]  # 0: the canonical lines, 1: the constants
        self._constants = bytearray()
        self._known: dict[bytes, np.ndarray] = {}

    def const(self, value: bytes) -> np.ndarray:
        if value not in self._known:
            self._known[value] = _view(value, 1, len(self._constants))
            if len(value) > 12:
                self._constants += value
        return self._known[value]

    def field(self, name: str) -> np.ndarray:
        return self.chunk.views(name)

    def length(self, name: str) -> np.ndarray:
        return self.field(name)[:, :4].copy().view(np.int32)[:, 0]

    def array(self, arr) -> np.ndarray:
        """Views of the strings of a binary array computed for this chunk."""
        import pyarrow as pa

        _, offsets_buf, data_buf = arr.buffers()
        width = np.int64 if arr.type == pa.large_binary() else np.int32
        offsets = np.frombuffer(offsets_buf, width)[arr.offset:arr.offset + len(arr) + 1].astype(np.int64)
        if data_buf is None:  # only empty strings
            data_buf = pa.py_buffer(b"")
        self._buffers.append(data_buf)
        return make_views(np.frombuffer(data_buf, np.uint8), offsets[:-1], np.diff(offsets), len(self._buffers) - 1)

    @staticmethod
    def choose(mask: np.ndarray, yes: np.ndarray, no: np.ndarray) -> np.ndarray:
        return np.where(mask[:, None], yes, no)

    def output(self, pieces: list, replace: dict[int, bytes] | None = None) -> memoryview:
        """Every row's pieces back to back; rows in ``replace`` are the given bytes instead."""
        import pyarrow as pa

        resolved = [self.const(p) if isinstance(p, bytes) else self.field(p) if isinstance(p, str) else p
                    for p in pieces]
        table = np.empty((self.n, len(resolved), 16), np.uint8)
        for k, views in enumerate(resolved):
            table[:, k] = views
        if replace:
            at = np.fromiter(replace, np.int64, len(replace))
            values = [replace[int(i)] for i in at]
            starts = np.concatenate([[0], np.cumsum([len(v) for v in values])[:-1]]).astype(np.int64)
            blob = b"".join(values)
            self._buffers.append(pa.py_buffer(blob))
            table[at] = 0  # empty pieces...
            table[at, 0] = make_views(np.frombuffer(blob, np.uint8), starts, np.array([len(v) for v in values]),
                                        len(self._buffers) - 1)  # ...but the first, the whole row
        self._buffers[1] = pa.py_buffer(bytes(self._constants))
        joined = from_views(table, self.n * len(resolved), *self._buffers).cast(pa.large_binary())
        _, offsets_buf, data_buf = joined.buffers()
        offsets = np.frombuffer(offsets_buf, np.int64)
        return memoryview(data_buf)[int(offsets[0]):int(offsets[-1])] if data_buf is not None else memoryview(b"")


def _view(value: bytes, buffer_index: int, offset: int) -> np.ndarray:
    view = make_views(np.frombuffer(value, np.uint8), np.zeros(1, np.int64), np.array([len(value)]), buffer_index)[0]
    if len(value) > 12:
        view.view(np.int32)[3] = offset
    return view


def _reference_or_null(layout: _Layout) -> np.ndarray:
    return layout.choose(layout.length("reference_answer") == 2, layout.const(b"null"), layout.field("reference_answer"))


def _ragas(layout: _Layout, ts: bytes, number: int) -> list:
    """{"key","metadata":{conversation, failure_modes, inclusion_probability, key, provenance, source,
    stratum, testset, verdict, version},"reference","response","retrieved_contexts","source","user_input"}"""
    return [b'{"key":', "key", b',"metadata":{"conversation":', "conversation", b',"failure_modes":', "failure_modes",
            b',"inclusion_probability":', "inclusion_probability", b',"key":', "key", b',"provenance":', "provenance",
            b',"source":', "source", b',"stratum":', "stratum", b',"testset":' + ts + b',"verdict":', "verdict",
            b',"version":%d},"reference":' % number, _reference_or_null(layout), b',"response":', "response",
            b',"retrieved_contexts":', "contexts", b',"source":', "source", b',"user_input":', "query", b"}\n"]


def _deepeval(layout: _Layout, ts: bytes, number: int) -> list:
    """{"additional_metadata":{conversation, failure_modes, inclusion_probability, key, provenance,
    response, source, stratum, testset, verdict, version},"context","expected_output","input","name"}"""
    return [b',\n{"additional_metadata":{"conversation":', "conversation", b',"failure_modes":', "failure_modes",
            b',"inclusion_probability":', "inclusion_probability", b',"key":', "key", b',"provenance":', "provenance",
            b',"response":', "response", b',"source":', "source", b',"stratum":', "stratum",
            b',"testset":' + ts + b',"verdict":', "verdict", b',"version":%d},"context":' % number, "contexts",
            b',"expected_output":', _reference_or_null(layout), b',"input":', "query", b',"name":', "key", b"}"]


def _promptfoo(layout: _Layout, ts: bytes, number: int) -> list:
    """{"assert","description","metadata":{conversation, failure_modes, inclusion_probability, key,
    response, source, stratum, testset, verdict, version},"vars":{"context","conversation","query",
    "reference_answer"}}"""
    import pyarrow.compute as pc

    blank = pc.match_substring_regex(layout.chunk.column("reference_answer"), _BLANK).to_numpy(zero_copy_only=False)
    nothing = layout.const(b"")
    return [b',\n{"assert":', layout.choose(blank, layout.const(b"[]"), layout.const(b'[{"type":"factuality","value":')),
            layout.choose(blank, nothing, layout.field("reference_answer")),
            layout.choose(blank, nothing, layout.const(b"}]")),
            b',"description":', "key", b',"metadata":{"conversation":', "conversation", b',"failure_modes":',
            "failure_modes", b',"inclusion_probability":', "inclusion_probability", b',"key":', "key",
            b',"response":', "response", b',"source":', "source", b',"stratum":', "stratum",
            b',"testset":' + ts + b',"verdict":', "verdict", b',"version":%d},"vars":{"context":' % number,
            layout.array(_joined(layout.chunk, "_v_context_items", (b"\\n\\n",))), b',"conversation":',
            layout.array(_joined(layout.chunk, "_v_message_items", (b": ", b"\\n"))), b',"query":', "query",
            b',"reference_answer":', "reference_answer", b"}}"]


def _joined(chunk: Chunk, column: str, separators: tuple[bytes, ...]):
    """Each row's items (views of JSON-escaped text kept at freeze) joined into one JSON string:
    "a<sep>b<sep>c" — the separator after item k is separators[k % len(separators)] — copied by Arrow
    for the whole chunk at once. Contexts: "c1\\n\\nc2"; messages: "role: content\\nrole: content"."""
    import pyarrow as pa

    offsets, items = chunk.items(column)
    n, count = len(chunk), np.diff(offsets)
    pieces = np.where(count > 0, 2 * count + 1, 1)  # " i1 s1 i2 … ik "  or  ""
    first = np.concatenate([[0], np.cumsum(pieces)])
    table = np.zeros((int(first[-1]), 16), np.uint8)
    has = count > 0
    table[first[:-1][~has]] = _view(b'""', 1, 0)
    table[first[:-1][has]] = _view(b'"', 1, 0)
    table[first[1:][has] - 1] = _view(b'"', 1, 0)
    row = np.repeat(np.arange(n), count)
    k = np.arange(len(row)) - offsets[:-1][row]  # the item's place in its row
    at = first[:-1][row] + 1 + 2 * k
    table[at] = items
    between = k < count[row] - 1
    for j, sep in enumerate(separators):
        table[at[between & (k % len(separators) == j)] + 1] = _view(sep, 1, 0)
    joined = from_views(table, len(table), chunk.data, pa.py_buffer(b"")).cast(pa.large_binary())
    lengths = table[:, :4].copy().view(np.int32)[:, 0].astype(np.int64)
    row_offsets = np.concatenate([[0], np.cumsum(lengths)])[first]
    return pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(row_offsets), joined.buffers()[2]])


# format: (its pieces, what goes before an item made one at a time, what after, the row function)
_JSON_FORMATS = {
    "ragas": (_ragas, b"", b"\n", rows.ragas_row),
    "deepeval": (_deepeval, b",\n", b"", rows.deepeval_golden),
    "promptfoo": (_promptfoo, b",\n", b"", rows.promptfoo_test),
}


def _json_items(chunk: Chunk, fmt: str, testset: str, number: int) -> memoryview:
    """The chunk's items in ``fmt``, each with its separator, back to back."""
    pieces, before, after, row = _JSON_FORMATS[fmt]
    layout = _Layout(chunk)
    odd = np.flatnonzero(~chunk.plain)
    replace = {int(i): before + rows.dumps(row(testset, number, orjson.loads(chunk.line(int(i))))) + after
               for i in odd}
    return layout.output(pieces(layout, orjson.dumps(testset), number), replace)


def _write(f, body: memoryview) -> None:
    # In slices: measured here, one 30 MB write() costs the kernel several times what 1 MB ones do.
    for at in range(0, len(body), 1 << 20):
        f.write(body[at:at + (1 << 20)])


def write_json_lines(store: Store, path: Path, *, fmt: str, testset: str, number: int, **_) -> None:
    with open(path, "wb") as f:
        for chunk in store.chunks():
            _write(f, _json_items(chunk, fmt, testset, number))


def write_json_array(store: Store, path: Path, *, fmt: str, testset: str, number: int, **_) -> None:
    """A JSON array, one element a line (as the row-by-row writer made it), written chunk by chunk."""
    with open(path, "wb") as f:
        f.write(b"[")
        first = True
        for chunk in store.chunks():
            body = _json_items(chunk, fmt, testset, number)
            _write(f, body[1:] if first else body)  # the first element has no comma before it
            first = False
        f.write(b"\n]\n")


WRITERS = {
    "csv": write_csv,
    "parquet": write_parquet,
    "hf": write_hf,
    "ragas": write_json_lines,
    "deepeval": write_json_array,
    "promptfoo": write_json_array,
}
