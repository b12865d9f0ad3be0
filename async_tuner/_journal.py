"""The run log: a JSON-lines trial journal, a text log and the final report.

Layout of one run's folder:

- ``run.json``: what the run is (strategy, search space, options), checked on resume.
- ``log.txt``: a header line per start, ``log_msg`` messages and each new best.
- ``trials.jsonl``: one JSON object per finished trial, appended and flushed as it finishes.
- ``tuner_report.json``: the original report's keys, written when the run ends.

Trial lines go to the file in writes of whole lines, so a ``kill -9`` can tear only the last
line. ``read_trials`` skips a torn last line and reports it, and a resumed run cuts it off
before appending.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import math
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import sniffio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._threads import current_waker
from ._types import ResumeError, Trial, TrialStatus

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
TEXT_LOG_FILE = "log.txt"
TRIALS_FILE = "trials.jsonl"
REPORT_FILE = "tuner_report.json"
LOCK_FILE = "run.lock"

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` into something ``json.dumps(allow_nan=False)`` accepts.

    Numpy scalars and arrays become Python numbers and lists, tuples and sets become lists,
    non-finite floats become the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, mapping
    keys become strings, and any other object becomes its ``repr``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if math.isnan(value):
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(item) for item in items]
    if hasattr(value, "tolist") and type(value).__module__.startswith("numpy"):
        return to_jsonable(value.tolist())
    return repr(value)


def _score_from_json(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _NON_FINITE[value]
    return float(value)


def trial_to_record(trial: Trial) -> dict[str, Any]:
    """Return the JSON-ready journal record of a finished trial."""
    return {
        "trial_id": trial.trial_id,
        "status": trial.status.value,
        "config": to_jsonable(trial.config),
        "score": to_jsonable(trial.score),
        "logged": to_jsonable(trial.logged),
        "error": trial.error,
        "traceback": trial.traceback,
        "started_at": trial.started_at,
        "finished_at": trial.finished_at,
        "duration": trial.duration,
        "cost": trial.cost,
        "resource": trial.resource,
        "bracket": trial.bracket,
        "rung": trial.rung,
    }


def record_to_trial(record: Mapping[str, Any], config: dict[str, Any]) -> Trial:
    """Rebuild a replayed trial from its journal record, with the strategy's own ``config``."""
    return Trial(
        trial_id=int(record["trial_id"]),
        config=config,
        status=TrialStatus(record["status"]),
        score=_score_from_json(record.get("score")),
        logged=record.get("logged"),
        error=record.get("error"),
        traceback=record.get("traceback"),
        duration=record.get("duration"),
        started_at=record.get("started_at"),
        finished_at=record.get("finished_at"),
        cost=record.get("cost", 1),
        resource=record.get("resource"),
        bracket=record.get("bracket"),
        rung=record.get("rung"),
        replayed=True,
    )


def read_trials(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int]:
    """Read a trial journal and return its records and the byte length of its valid part.

    A last line without its newline, or that is not valid JSON, is a torn write: it is skipped
    with a warning and left out of the valid length. An invalid line elsewhere means the file
    is not a journal written by this library, and raises.

    Raises:
        ResumeError: a line before the last is not a JSON object.
    """
    data = Path(path).read_bytes()
    records: list[dict[str, Any]] = []
    valid_length = 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        is_last = number == len(lines)
        if not line.strip():
            if not is_last:
                valid_length += len(line) + 1
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or is_last:
                raise ValueError("incomplete line")
        except ValueError:
            if number >= len(lines) - 1:
                logger.warning(
                    "Skipping a torn last line in %s (%d bytes); its trial runs again",
                    path,
                    len(line),
                )
                break
            msg = f"{path} line {number} is not a JSON object; this file is not a trial journal"
            raise ResumeError(msg) from None
        records.append(record)
        valid_length += len(line) + 1
    return records, valid_length


def _lock_owner(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _process_alive(pid: int) -> bool:
    if sys.platform == "win32":
        # NOTE: os.kill(pid, 0) would terminate the process on Windows, so there every existing
        # lock counts as held, and a stale one must be deleted by hand.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _timestamp() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


class RunLog:
    """Stream trial records and messages to one run's folder from a writer task.

    Lines are queued without blocking (``write_trial``, ``write_message``) and the writer task
    appends them in batches through aiofiles (anyio's file API under trio): whole lines in one
    write, then a flush. ``flushed`` waits until the queue is written; ``aclose`` drains it.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._send: MemoryObjectSendStream[tuple[str, str]] | None = None
        self._writer_done = anyio.Event()
        self._loop_thread = threading.get_ident()
        self._wake: Callable[[Callable[[], object]], None] | None = None
        self._pending = 0  # lines queued and not yet written
        self._locked = False
        self._caught_up: anyio.Event | None = None

    @property
    def trials_path(self) -> Path:
        """Path of the trial journal."""
        return self.directory / TRIALS_FILE

    def read_run_info(self) -> dict[str, Any] | None:
        """Return the stored run description, or None when the folder contains no run."""
        path = self.directory / RUN_FILE
        if not path.exists():
            return None
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return info

    def prepare(
        self, run_info: dict[str, Any], header: str, *, resume: bool
    ) -> list[dict[str, Any]]:
        """Create or reopen the folder and return the journal records to replay.

        A new run writes ``run.json`` and starts the text log. A resumed run cuts a torn last
        journal line off, so that appended records start on a line of their own.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock()
        records: list[dict[str, Any]] = []
        if resume and self.trials_path.exists():
            records, valid_length = read_trials(self.trials_path)
            with open(self.trials_path, "r+b") as journal:
                journal.truncate(valid_length)
        else:
            text = json.dumps(to_jsonable(run_info), indent=2, allow_nan=False)
            (self.directory / RUN_FILE).write_text(text + "\n", encoding="utf-8")
            self.trials_path.write_bytes(b"")
        mode = "a" if resume else "w"
        with open(self.directory / TEXT_LOG_FILE, mode, encoding="utf-8") as text_log:
            text_log.write(f"{_timestamp()} {header}\n")
        return records

    def _lock(self) -> None:
        """Mark the folder as in use by this process, so that no second run appends to it.

        Raises:
            ResumeError: a live process, this one included, has locked the folder.
        """
        path = self.directory / LOCK_FILE
        while True:
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = _lock_owner(path)
                if owner is not None and _process_alive(owner):
                    msg = (
                        f"{self.directory} is in use by another run (process {owner}); wait for "
                        "it to end or stop it, or choose another run_name"
                    )
                    raise ResumeError(msg) from None
                # The owner is gone (killed or crashed), so the lock is stale.
                path.unlink(missing_ok=True)
                continue
            with os.fdopen(descriptor, "w") as lock:
                lock.write(str(os.getpid()))
            self._locked = True
            return

    def unlock(self) -> None:
        """Release the folder for later runs and resumes."""
        if self._locked:
            (self.directory / LOCK_FILE).unlink(missing_ok=True)
            self._locked = False

    async def run_writer(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Write queued lines until ``aclose``; to be started in the run's task group.

        When cancelled, the writer still writes what is queued (shielded) before it ends. Lines
        queued after that, or still queued because asyncio's shutdown cancelled the writer
        through its shield, are appended synchronously.
        """
        send, receive = anyio.create_memory_object_stream[tuple[str, str]](max_buffer_size=math.inf)
        self._send = send
        self._loop_thread = threading.get_ident()
        self._wake = current_waker()
        task_status.started()
        files: dict[str, _AsyncTextFile] = {}
        try:
            with anyio.CancelScope(shield=True):
                for name in (TRIALS_FILE, TEXT_LOG_FILE):
                    files[name] = await _AsyncTextFile.open(self.directory / name)
            try:
                async for batch, count in _batches(receive):
                    await _write_batch(files, batch)
                    self._written(count)
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    batch, count = _drain(receive)
                    await _write_batch(files, batch)
                    self._written(count)
                raise
        finally:
            self._send = None
            unwritten, _ = _drain(receive)
            receive.close()
            send.close()
            with anyio.CancelScope(shield=True):
                for file in files.values():
                    await file.aclose()
            for target, text in unwritten.items():
                if text:
                    self._put(target, text)
            self._written(self._pending)
            self._writer_done.set()

    def _written(self, count: int) -> None:
        self._pending -= count
        if self._pending <= 0 and self._caught_up is not None:
            self._caught_up.set()

    async def flushed(self) -> None:
        """Wait until every line queued so far is written and flushed to the file.

        The inline path awaits this after each trial: its evaluations block the event loop, so
        a queued line would otherwise wait for the whole next evaluation, and a crash in that
        time would lose a finished trial from the journal.
        """
        if self._send is None or self._pending <= 0:
            return
        if self._caught_up is None or self._caught_up.is_set():
            self._caught_up = anyio.Event()
        await self._caught_up.wait()

    def write_trial(self, trial: Trial) -> None:
        """Queue a finished trial's journal line."""
        line = json.dumps(trial_to_record(trial), allow_nan=False, separators=(",", ":"))
        self._put(TRIALS_FILE, line + "\n")

    def write_message(self, message: str) -> None:
        """Queue a line of the text log, prefixed with the time."""
        self._put(TEXT_LOG_FILE, f"{_timestamp()} {message}\n")

    def _put(self, target: str, text: str) -> None:
        wake = self._wake
        if (
            self._send is not None
            and wake is not None
            and threading.get_ident() != self._loop_thread
        ):
            # Called from a worker thread, e.g. log_msg inside eval_fn: queue from the loop.
            wake(functools.partial(self._put, target, text))
            return
        if self._send is not None:
            try:
                self._send.send_nowait((target, text))
                self._pending += 1
                return
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass  # aclose() has begun: the writer takes no more lines
        # No writer task (not started yet, or already ended): append directly.
        with open(self.directory / target, "a", encoding="utf-8") as file:
            file.write(text)

    async def aclose(self) -> None:
        """Close the queue and wait until the writer has written and flushed every line."""
        if self._send is not None:
            self._send.close()
            with anyio.CancelScope(shield=True):
                await self._writer_done.wait()

    def write_report(self, report: Mapping[str, Any]) -> Path:
        """Write the final report atomically and return its path."""
        path = self.directory / REPORT_FILE
        partial = path.with_suffix(".json.partial")
        partial.write_text(
            json.dumps(to_jsonable(report), indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        os.replace(partial, path)
        return path


async def _batches(
    receive: MemoryObjectReceiveStream[tuple[str, str]],
) -> AsyncIterator[tuple[dict[str, str], int]]:
    """Yield everything queued so far as one text per file, and the number of lines in it."""
    async for first in receive:
        yield _drain(receive, first)


def _drain(
    receive: MemoryObjectReceiveStream[tuple[str, str]], first: tuple[str, str] | None = None
) -> tuple[dict[str, str], int]:
    parts: dict[str, list[str]] = {TRIALS_FILE: [], TEXT_LOG_FILE: []}
    count = 0
    if first is not None:
        parts[first[0]].append(first[1])
        count += 1
    while True:
        try:
            target, text = receive.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            break
        parts[target].append(text)
        count += 1
    return {name: "".join(texts) for name, texts in parts.items()}, count


async def _write_batch(files: Mapping[str, _AsyncTextFile], batch: Mapping[str, str]) -> None:
    for name, text in batch.items():
        if text:
            # Shielded so that a cancellation never leaves half a batch in the file buffer.
            with anyio.CancelScope(shield=True):
                await files[name].write(text)


class _AsyncTextFile:
    """An append-mode text file: aiofiles on asyncio, anyio's file API elsewhere (trio)."""

    def __init__(self, file: Any, close_name: str) -> None:
        self._file = file
        self._close_name = close_name

    @classmethod
    async def open(cls, path: Path) -> _AsyncTextFile:
        if sniffio.current_async_library() == "asyncio":
            import aiofiles

            return cls(await aiofiles.open(path, "a", encoding="utf-8"), "close")
        return cls(await anyio.open_file(path, "a", encoding="utf-8"), "aclose")

    async def write(self, text: str) -> None:
        await self._file.write(text)
        await self._file.flush()

    async def aclose(self) -> None:
        await getattr(self._file, self._close_name)()
