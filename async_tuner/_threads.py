"""Thread workers, and the bridge that lets the event loop await work done in other threads.

Implementation notes. ``anyio.to_thread.run_sync`` would do for threads that always finish, but
an evaluation that hangs must be given up on: the caller stops waiting, and the pool must still
have ``num_workers`` threads for the next trials. A ``ThreadPoolExecutor`` cannot grow past its
size, and its threads are joined at interpreter exit, so one hung evaluation would hang the exit
too. ``ThreadWorkers`` is therefore a small pool of daemon threads: a thread whose job was given
up on is written off and replaced, and exits on its own once the job returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import anyio
import sniffio

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 5.0  # seconds to wait for an idle worker thread at shutdown


class EvaluationError(Exception):
    """Raised by a worker backend when the evaluation raised; carries text, not the exception.

    Keeping only text means the evaluation's frames, and whatever data they hold, are freed as
    soon as the error is described.
    """

    def __init__(self, error: str, traceback_text: str) -> None:
        super().__init__(error)
        self.error = error
        self.traceback = traceback_text
        self.started_at: float | None = None
        self.duration: float | None = None


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """Return ``("Type: message", formatted traceback)`` and clear the frames' locals.

    Never raises, even for an exception whose ``__str__`` raises.
    """
    try:
        message = str(exc)
    except Exception:
        message = f"<str() of the {type(exc).__name__} failed>"
    error = f"{type(exc).__name__}: {message}"
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        text = ""
    if exc.__traceback__ is not None:
        traceback.clear_frames(exc.__traceback__)
    exc.__traceback__ = None
    return error, text


def current_waker() -> Callable[[Callable[[], object]], None]:
    """Return a function that any thread can call to run a callback on the current event loop.

    The returned function does not block, and does nothing once the loop has closed.
    """
    if sniffio.current_async_library() == "trio":
        import trio

        token = trio.lowlevel.current_trio_token()

        def wake_trio(callback: Callable[[], object]) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(callback)

        return wake_trio

    loop = asyncio.get_running_loop()

    def wake_asyncio(callback: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # raised once the loop has closed
            loop.call_soon_threadsafe(callback)

    return wake_asyncio


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Job:
    __slots__ = ("args", "duration", "error", "result", "started_at", "state", "thread", "wake")

    def __init__(self, args: tuple[Any, ...], wake: Callable[[], None]) -> None:
        self.args = args
        self.wake = wake
        self.state = "pending"  # pending -> running -> done | abandoned; pending -> cancelled
        self.result: Any = None
        self.error: tuple[str, str] | None = None
        self.thread: threading.Thread | None = None
        self.started_at = 0.0
        self.duration = 0.0


class ThreadWorkers:
    """Run a sync function in up to ``num_workers`` daemon threads.

    At most ``num_workers`` threads run at once, and calls beyond that wait in a queue. A caller
    that keeps one call queued per thread thus lets each thread start its next evaluation without
    a round trip through the event loop.

    When ``run`` is cancelled while its job runs, the thread is abandoned (Python cannot stop a
    thread) and a new one takes its place.
    """

    def __init__(self, fn: Callable[..., Any], num_workers: int) -> None:
        self._fn = fn
        self._num_workers = num_workers
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._abandoned: set[threading.Thread] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waker: Callable[[Callable[[], object]], None] | None = None

    @property
    def abandoned_threads(self) -> int:
        """Number of threads still running an evaluation that was given up on."""
        with self._lock:
            return sum(1 for thread in self._abandoned if thread.is_alive())

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, name="async_tuner-worker", daemon=True)
        self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with self._lock:
                if job.state == "cancelled":
                    continue
                job.state = "running"
                job.thread = me
            job.started_at = time.time()
            start = time.perf_counter()
            try:
                job.result = self._fn(*job.args)
            except BaseException as exc:
                job.error = describe_exception(exc)
            job.duration = time.perf_counter() - start
            with self._lock:
                if job.state == "abandoned":
                    self._abandoned.discard(me)
                    self._threads.discard(me)
                    return
                job.state = "done"
            job.wake()

    async def run(self, *args: Any) -> Any:
        """Run the function with ``args`` in a worker thread and return its result.

        Raises:
            EvaluationError: the function raised.
        """
        result, _, _ = await self.run_timed(*args)
        return result

    async def run_timed(self, *args: Any) -> tuple[Any, float, float]:
        """Run the function like ``run``; also return when it started and how long it ran.

        The start is a Unix timestamp and the duration is in seconds, both taken in the worker
        thread, so time spent queued for a free thread is not counted.

        Raises:
            EvaluationError: the function raised; its ``started_at`` and ``duration`` are set.
        """
        if self._waker is None:
            self._waker = current_waker()
            if sniffio.current_async_library() == "asyncio":
                self._loop = asyncio.get_running_loop()
        with self._lock:
            if len(self._threads) - len(self._abandoned) < self._num_workers:
                self._start_thread()
        try:
            if self._loop is not None:
                # A bare future costs less than an anyio.Event on the hot path of cheap trials.
                future = self._loop.create_future()
                job = _Job(
                    args, functools.partial(self._waker, functools.partial(_resolve, future))
                )
                self._jobs.put(job)
                await future
            else:
                done = anyio.Event()
                job = _Job(args, functools.partial(self._waker, done.set))
                self._jobs.put(job)
                await done.wait()
        except BaseException:
            self._give_up(job)
            raise
        if job.error is not None:
            error = EvaluationError(*job.error)
            error.started_at = job.started_at
            error.duration = job.duration
            raise error
        return job.result, job.started_at, job.duration

    def _give_up(self, job: _Job) -> None:
        with self._lock:
            if job.state == "pending":
                job.state = "cancelled"
            elif job.state == "running" and job.thread is not None:
                job.state = "abandoned"
                self._abandoned.add(job.thread)
                self._start_thread()

    def close(self) -> None:
        """Stop the idle threads and wait for them; abandoned threads are left to finish alone."""
        with self._lock:
            live = [thread for thread in self._threads if thread not in self._abandoned]
        for _ in live:
            self._jobs.put(None)
        for thread in live:
            thread.join(JOIN_TIMEOUT)


class ExecutorWorkers:
    """Run a function on a user's ``concurrent.futures.Executor``; the user shuts it down."""

    def __init__(self, fn: Callable[..., Any], executor: concurrent.futures.Executor) -> None:
        self._fn = fn
        self._executor = executor
        self.abandoned_futures = 0

    async def run(self, *args: Any) -> Any:
        """Submit the function with ``args`` and return its result.

        Raises:
            EvaluationError: the function raised.
        """
        waker = current_waker()
        done = anyio.Event()
        future = self._executor.submit(self._fn, *args)
        future.add_done_callback(lambda _: waker(done.set))
        try:
            await done.wait()
        except BaseException:
            if not future.cancel():
                self.abandoned_futures += 1
            raise
        try:
            return future.result()
        except Exception as exc:
            raise EvaluationError(*describe_exception(exc)) from None

    def close(self) -> None:
        """Do nothing: the executor belongs to the caller."""
