"""What the proxy does after the user's answer is complete, off the user's path.

    Recorder.submit(call)   from the event loop: one put on a bounded queue, no parsing, no database
                            (full: the turn is spooled to a file at once, its shadow calls dropped)
    the dispatcher (thread) parses the call into its turn line, for the writer's bounded queue (full:
                            spooled), and for each release whose share the session falls in puts a
                            shadow job on a third bounded queue; full: the job is dropped and counted
                            (a mirrored answer is a sample, a turn is not)
    shadow workers (threads)  ask the candidate through the llm client, queue its answer as a shadow line
    the writer (one thread)   ingests lines in batches through production's ingest (the input contract,
                              its rejects and idempotency); the database failing: the batch is spooled;
                              spool files are ingested, oldest first, once a write succeeds again

A spool file is written whole (temporary name, then renamed), so the drain never reads half of
one; ingest is keyed on (source, turn id) and (source, turn id, release), so a file ingested twice
(a crash between ingest and unlink) stores nothing twice.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import close_old_connections, connection

from llm import client as llm
from production.services import ingest

from .calls import Call, request_json, session_in_shadow, session_of, shadow_line, turn_line

log = logging.getLogger(__name__)
_STOP = object()


@dataclass(frozen=True)
class Shadow:
    """A candidate release the proxy mirrors a share of sessions to."""

    release: str
    percent: float
    endpoint: llm.Endpoint


@dataclass(frozen=True)
class ShadowJob:
    turn_id: str
    release: str
    messages: list


class Counters:
    NAMES = ("calls", "turns_queued", "turns_written", "turns_spooled", "lines_spooled", "spool_files_ingested",
             "shadow_queued", "shadow_dropped", "shadow_lines_queued", "shadow_answered", "shadow_failed", "write_errors")

    def __init__(self):
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.NAMES, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] += n

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class Spool:
    """Lines that could not be written yet, as JSON-lines files in one directory."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self._seq = itertools.count()

    def put(self, lines: list[dict]) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):06d}"
        tmp = self.dir / f".{name}.tmp"
        tmp.write_bytes(b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines))
        path = self.dir / f"{name}.jsonl"
        tmp.rename(path)
        return path

    def files(self) -> list[Path]:
        return sorted(self.dir.glob("*.jsonl")) if self.dir.is_dir() else []


def spool_drain(*, source_name: str, spool_dir: str | Path) -> dict:
    """Ingest every spooled file of a proxy, oldest first, deleting each once ingested. Raises the
    database's error when it is still unavailable (the files stay)."""
    out = {"files": 0, "created": 0, "duplicates": 0, "rejected": 0, "shadow": 0}
    source = ingest.source_get_or_create(name=source_name)
    for path in Spool(spool_dir).files():
        result = ingest.turns_ingest_body(source=source, body=path.read_bytes())
        path.unlink()
        out["files"] += 1
        for k in ("created", "duplicates", "rejected", "shadow"):
            out[k] += getattr(result, k)
    return out


class Recorder:
    def __init__(self, *, source: str, spool_dir: str | Path, shadows: list[Shadow] = (), salt: str,
                 queue_size: int = 10_000, shadow_queue_size: int = 1_000, shadow_workers: int = 4,
                 batch_size: int = 500, flush_seconds: float = 0.2, retry_seconds: float = 5.0):
        self.source = source
        self.spool = Spool(spool_dir)
        self.shadows = list(shadows)
        self.salt = salt
        self.calls: queue.Queue = queue.Queue(maxsize=queue_size)
        self.lines: queue.Queue = queue.Queue(maxsize=queue_size)
        self.jobs: queue.Queue = queue.Queue(maxsize=shadow_queue_size)
        self.shadow_workers = shadow_workers
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.retry_seconds = retry_seconds
        self.counters = Counters()
        self._threads: list[threading.Thread] = []
        self._endpoints = {s.release: s.endpoint for s in self.shadows}
        self._failing = False  # the outage is logged once, not on every retry

    # --- the event loop's side: one non-blocking put ---------------------------------------------

    def submit(self, call: Call) -> None:
        """Take a finished call. Parsing, sampling and spooling happen on the dispatcher thread; only
        when its queue is full does the event loop spool the turn itself (and drop its shadow calls)."""
        self.counters.add("calls")
        try:
            self.calls.put_nowait(call)
        except queue.Full:
            request = request_json(call.request_body)
            self.spool.put([turn_line(call, request)])
            self.counters.add("turns_spooled")
            self.counters.add("shadow_dropped", len(self._sampled(call, request)))

    def _sampled(self, call: Call, request: dict) -> list[Shadow]:
        if not (200 <= call.status < 300) or call.error or not self.shadows:
            return []
        session = session_of(call, request)
        return [s for s in self.shadows
                if session_in_shadow(salt=self.salt, release=s.release, session_id=session, percent=s.percent)]

    def _dispatch(self, call: Call) -> None:
        """A call's turn line for the writer, and a shadow job per release whose share its session is in."""
        request = request_json(call.request_body)
        self._put_line(turn_line(call, request), counter="turns_queued", spooled="turns_spooled")
        messages = request.get("messages") if isinstance(request.get("messages"), list) else []
        for s in self._sampled(call, request):
            try:
                self.jobs.put_nowait(ShadowJob(turn_id=call.turn_id, release=s.release, messages=messages))
                self.counters.add("shadow_queued")
            except queue.Full:
                self.counters.add("shadow_dropped")

    def _put_line(self, line: dict, *, counter: str, spooled: str) -> None:
        try:
            self.lines.put_nowait(line)
            self.counters.add(counter)
        except queue.Full:
            # The writer cannot keep up: the line goes to disk now (one small file), never lost.
            self.spool.put([line])
            self.counters.add(spooled)

    # --- threads ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._dispatch_loop, name="proxy-dispatcher", daemon=True),
                         threading.Thread(target=self._write_loop, name="proxy-writer", daemon=True)]
        if self.shadows:
            self._threads += [threading.Thread(target=self._shadow_loop, name=f"proxy-shadow-{i}", daemon=True)
                              for i in range(self.shadow_workers)]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Dispatch what is queued, let the shadow workers finish, then the writer write (or spool) the rest."""
        self.calls.put(_STOP)
        for t in self._threads:
            if t.name == "proxy-dispatcher":
                t.join(timeout)
        workers = [t for t in self._threads if t.name.startswith("proxy-shadow")]
        for _ in workers:
            self.jobs.put(_STOP)
        for t in workers:
            t.join(timeout)
        self.lines.put(_STOP)
        for t in self._threads:
            if t.name == "proxy-writer":
                t.join(timeout)
        self._threads = []

    def _dispatch_loop(self) -> None:
        while True:
            call = self.calls.get()
            if call is _STOP:
                return
            self._dispatch(call)

    def _shadow_loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is _STOP:
                return
            try:
                reply = self._ask_candidate(job)
            except Exception as e:  # noqa: BLE001 - a failed candidate call is counted, never the user's problem
                self.counters.add("shadow_failed")
                log.warning("proxy: candidate %s failed on turn %s: %s", job.release, job.turn_id, e)
                continue
            self.counters.add("shadow_answered")
            line = shadow_line(turn_id=job.turn_id, release=job.release, response=reply.content,
                               latency_ms=reply.latency_ms)
            self._put_line(line, counter="shadow_lines_queued", spooled="lines_spooled")

    def _ask_candidate(self, job: ShadowJob) -> llm.Reply:
        # The one LLM client: its retries, token counting and spending rules apply to the candidate.
        return llm.chat_text(self._endpoints[job.release], job.messages)

    def _write_loop(self) -> None:
        last_attempt_failed = 0.0
        while True:
            batch, stop = self._next_batch()
            if batch:
                if self._write(batch):
                    self.counters.add("turns_written", sum(1 for line in batch if line.get("type") != "shadow"))
                    self._drain()
                else:
                    self.spool.put(batch)
                    self.counters.add("lines_spooled", len(batch))
                    last_attempt_failed = time.monotonic()
            elif self.spool.files() and time.monotonic() - last_attempt_failed >= self.retry_seconds:
                if not self._drain():
                    last_attempt_failed = time.monotonic()
            if stop:
                close_old_connections()
                return

    def _next_batch(self) -> tuple[list[dict], bool]:
        batch: list[dict] = []
        deadline = time.monotonic() + self.flush_seconds
        while len(batch) < self.batch_size:
            try:
                item = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _write(self, lines: list[dict]) -> bool:
        body = b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)
        try:
            source = ingest.source_get_or_create(name=self.source)
            ingest.turns_ingest_body(source=source, body=body)
        except Exception as e:  # noqa: BLE001 - whatever the database says, the lines go to the spool
            self._failed(e)
            return False
        if self._failing:
            log.warning("proxy: evalgap's database takes writes again")
            self._failing = False
        return True

    def _drain(self) -> bool:
        if not self.spool.files():
            return True
        try:
            out = spool_drain(source_name=self.source, spool_dir=self.spool.dir)
        except Exception as e:  # noqa: BLE001 - still unavailable: the files stay for the next try
            self._failed(e)
            return False
        self.counters.add("spool_files_ingested", out["files"])
        return True

    def _failed(self, error: Exception) -> None:
        self.counters.add("write_errors")
        if not self._failing:
            self._failing = True
            log.warning("proxy: cannot write to evalgap's database (%s); spooling until it does",
                        str(error).splitlines()[0][:200])
        # A broken connection is not reused: the next attempt opens a new one.
        connection.close()
