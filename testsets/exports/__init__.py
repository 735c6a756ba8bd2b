"""Exports of a test set version, for the eval tools that consume it.

Formats (each item carries `source`; generated cases have source = "generated"):

- ``jsonl``: canonical. One line per item, sorted by key, each the item's canonical JSON (sorted keys,
  every field of ``ITEM_FIELDS`` including ``provenance``). These are exactly the bytes the version's
  sha256 covers, so ``sha256(file) == version.sha256``.
- ``csv``: the same columns; nested fields (contexts, conversation, failure_modes, provenance) as
  canonical JSON text; UTF-8, RFC 4180 quoting (every text cell quoted). A cell a spreadsheet would run
  as a formula (one that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return: production
  text is whatever users typed) is written with a leading ``'``, so it shows as text;
  ``csv_raw=True`` (``export_testset --csv-raw``) writes every cell as it is.
- ``parquet``: the same columns with an explicit Arrow schema (lists stay lists; provenance, whose keys
  vary by source, is canonical JSON text).
- ``hf``: a folder that ``datasets.load_from_disk(path)`` reads (the layout ``Dataset.save_to_disk``
  writes: one Arrow stream file, ``dataset_info.json``, ``state.json``), with the same explicit schema as
  Parquet, so no type is guessed from the data (a JSONL file would make ``load_dataset("json")`` infer
  types from its first 10 MB, which breaks on e.g. all-empty lists there). If ``path`` ends in ``.zip``
  the folder is written into a zip archive instead (one top-level folder): that is the HTTP download.
- ``ragas``: JSONL with RAGAS ``SingleTurnSample`` columns ``user_input``, ``retrieved_contexts``,
  ``response``, ``reference`` (``EvaluationDataset.from_jsonl``), plus ``key``, ``source`` and a
  ``metadata`` object, which RAGAS ignores.
- ``deepeval``: a JSON array of goldens (``EvaluationDataset.add_goldens_from_json_file``): ``name``
  (the key), ``input``, ``expected_output``, ``context``, ``additional_metadata`` (source, verdict, …).
- ``promptfoo``: a tests file (``tests: file://…json`` in promptfooconfig.yaml): a JSON array of test
  cases ``{description, vars, assert, metadata}``. ``vars``: ``query``, ``context`` (the contexts
  joined by a blank line: an array var would make promptfoo expand it into several tests),
  ``reference_answer``; ``assert``: a ``factuality`` check against the reference answer where there is
  one; ``metadata``: key, source, verdict, failure modes, stratum, … (``--filter-metadata source=…``).

``rows.py`` defines each format one item at a time; ``writers.py`` writes whole columns from the files
the freeze keeps (``store.py``), the same bytes. An existing directory at the output path is never
deleted or written into: the export is refused.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from ..models import TestSetVersion
from ..models import ITEM_FIELDS, NESTED_FIELDS  # noqa: F401 (re-exported)
from ..selectors import TestSetError
from ..services.versions import iter_items  # noqa: F401 (re-exported)
from .rows import arrow_schema, csv_cell_safe, deepeval_golden, promptfoo_test, ragas_row  # noqa: F401
from .store import Store, StoreDamaged, canonical_path, file_sha256, store_discard, store_open, store_write
from .writers import WRITERS

FORMATS = ("jsonl", "csv", "parquet", "hf", "ragas", "deepeval", "promptfoo")

_DOWNLOADS = {
    "jsonl": ("application/x-ndjson", ".jsonl"),
    "csv": ("text/csv; charset=utf-8", ".csv"),
    "parquet": ("application/vnd.apache.parquet", ".parquet"),
    "hf": ("application/zip", "-hf.zip"),
    "ragas": ("application/x-ndjson", "-ragas.jsonl"),
    "deepeval": ("application/json", "-deepeval.json"),
    "promptfoo": ("application/json", "-promptfoo-tests.json"),
}


def content_type_and_filename(version: TestSetVersion, fmt: str) -> tuple[str, str]:
    """The Content-Type and download filename of an export; every format downloads as ONE file
    (hf as a zip of its folder). ``export_version(version, fmt, dir / filename)`` writes that file."""
    check_format(fmt)
    content_type, suffix = _DOWNLOADS[fmt]
    return content_type, f"{version.testset.name}-v{version.number}{suffix}"


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise TestSetError(f"format: unknown export format {fmt!r} (one of {', '.join(FORMATS)})")


def export_version(version: TestSetVersion, fmt: str, path: Path, *, allow_draft: bool = False,
                   csv_raw: bool = False, verify: bool = False) -> Path:
    """Write ``version`` in format ``fmt`` to ``path`` (a file, or for ``hf`` a folder unless ``path``
    ends in .zip) and return it. The write is atomic: ``path`` appears only when complete; an existing
    file there is replaced, an existing directory is refused (never deleted). ``verify`` first checks
    every file of the version's store against its digest (the canonical bytes against the version's
    sha256), not only their sizes: what an export job does before its file is recorded.
    Raises TestSetError for an unknown format, a draft version (a draft can still change) or a
    directory in the way."""
    check_format(fmt)
    if version.status != TestSetVersion.Status.FROZEN and not allow_draft:
        raise TestSetError(f"version: {version.testset.name} v{version.number} is a draft; freeze it first "
                           f"(an export must be reproducible)")
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise TestSetError(f"output: {path} is an existing directory; an export never deletes or writes into "
                           f"one (give a new path)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        if version.status == TestSetVersion.Status.FROZEN:
            _write(version, fmt, tmp, path, csv_raw, verify=verify)
        else:
            with tempfile.TemporaryDirectory(dir=path.parent, prefix=".draft-store-") as d:
                sha, _ = store_write(iter_items(version), Path(d))
                store = Store(Path(d), sha)
                _write(version, fmt, tmp, path, csv_raw, store=store)
        if path.is_symlink() or path.exists():
            path.unlink()  # a file (or a link), never a directory: refused above
        os.replace(tmp, path)
    finally:
        _remove(tmp)
    return path


def _write(version, fmt: str, tmp: Path, path: Path, csv_raw: bool, store: Store | None = None,
           verify: bool = False) -> None:
    if fmt == "jsonl":
        _write_jsonl(version, tmp, store)  # always checked: the copy is hashed
        return
    options = {"fmt": fmt, "raw": csv_raw, "testset": version.testset.name, "number": version.number,
               "sha256": version.sha256}
    for attempt in (1, 2):
        try:
            current = store or store_open(version)
            if verify and store is None:
                current.verify()
            if fmt == "hf" and path.suffix == ".zip":
                _write_hf_zip(current, tmp, options)
            else:
                WRITERS[fmt](current, tmp, **options)
            return
        except StoreDamaged:
            if store is not None or attempt == 2:
                raise
            _remove(tmp)
            store_discard(version.sha256)  # written again from the database on the next try


def _write_jsonl(version: TestSetVersion, path: Path, store: Store | None) -> None:
    if store is not None:  # a draft's, just written
        shutil.copyfile(store.canonical_path, path)
        return
    # Written at freeze: the same bytes, named by their sha256 — served only if they still hash to it.
    cached = canonical_path(version.sha256)
    if cached.exists():
        shutil.copyfile(cached, path)
        if file_sha256(path) == version.sha256:
            return
        cached.unlink(missing_ok=True)
    shutil.copyfile(store_open(version).canonical_path, path)  # written again from the database
    if file_sha256(path) != version.sha256:
        raise TestSetError(f"version: {version.testset.name} v{version.number}'s items no longer hash to its "
                           f"sha256: not exported")


def _write_hf_zip(store: Store, path: Path, options: dict) -> None:
    folder_name = f"{options['testset']}-v{options['number']}-hf"
    with tempfile.TemporaryDirectory(dir=path.parent) as d:
        folder = Path(d) / folder_name
        WRITERS["hf"](store, folder, **options)
        with zipfile.ZipFile(path, "w") as z:
            for f in sorted(folder.iterdir()):
                # A fixed date and mode: the same version zips to the same bytes (its recorded sha256 holds).
                info = zipfile.ZipInfo(f"{folder_name}/{f.name}", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
                with open(f, "rb") as src, z.open(info, "w", force_zip64=True) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)


def _remove(p: Path) -> None:
    """Remove a temporary file or folder of ours (never a user's path)."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()
