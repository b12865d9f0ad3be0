"""Run a tuning coroutine from synchronous code, and turn Ctrl-C into a clean cancellation."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any, TypeVar

import anyio
import sniffio

T = TypeVar("T")

JOIN_POLL_INTERVAL = 0.1  # seconds between checks for Ctrl-C while a helper thread runs the loop


class Interrupts:
    """Ctrl-C handling for one run owned by ``Tuner.tune()``.

    The first Ctrl-C cancels the run: workers are stopped, the log is flushed, and ``tune()``
    then raises ``KeyboardInterrupt``. While an evaluation runs inline on the loop's thread,
    the first Ctrl-C raises ``KeyboardInterrupt`` inside it at once, as it would in a plain
    loop, and the engine turns that into the same cancellation. A second Ctrl-C raises
    ``KeyboardInterrupt`` wherever the main thread is, so a stuck cleanup cannot hang the
    interpreter.
    """

    def __init__(self) -> None:
        self.requested = False
        self.inline_call = False
        self._count = 0
        self._cancel: Callable[[], None] | None = None

    def bind(self, cancel: Callable[[], None]) -> None:
        """Set the thread-safe function that cancels the run; call it if Ctrl-C came first."""
        self._cancel = cancel
        if self.requested:
            cancel()

    def request(self) -> None:
        """Cancel the run because of Ctrl-C; callable from any thread."""
        self.requested = True
        if self._cancel is not None:
            self._cancel()

    def handle_signal(self, signum: int, frame: FrameType | None) -> None:
        """Handle SIGINT in the main thread."""
        self._count += 1
        if self._count > 1 or self.inline_call or self._cancel is None:
            self.requested = True
            raise KeyboardInterrupt
        self.request()


def loop_running() -> bool:
    """Return whether an event loop runs in this thread: asyncio's (a notebook's) or trio's."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return True
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return False
    return True


def run_here(main: Callable[[Interrupts], Awaitable[T]]) -> T:
    """Run ``main`` on a new asyncio loop in this thread.

    In the main thread, Ctrl-C is handled by ``Interrupts`` for the duration of the run, unless
    the application has installed a SIGINT handler of its own.

    Raises:
        KeyboardInterrupt: Ctrl-C cancelled the run.
    """
    interrupts = Interrupts()
    installed = False
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, interrupts.handle_signal)
            installed = True
    try:
        result = anyio.run(main, interrupts)
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous)
    if interrupts.requested:
        raise KeyboardInterrupt
    return result


def run_in_thread(main: Callable[[Interrupts], Awaitable[T]]) -> T:
    """Run ``main`` on a new event loop in a helper thread and wait for it.

    For callers whose thread already runs a loop (a notebook cell): the loop cannot be
    re-entered, so a second loop runs beside it. Ctrl-C while waiting cancels the run.

    Raises:
        KeyboardInterrupt: Ctrl-C cancelled the run.
    """
    interrupts = Interrupts()
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def target() -> None:
        try:
            outcome["result"] = anyio.run(main, interrupts)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            finished.set()

    # A daemon thread, so that after a second Ctrl-C the interpreter can exit even while the
    # run's cleanup hangs. The caller waits on an event rather than with Thread.join, because in
    # CPython 3.11.7 (Thread._wait_for_tstate_lock) a Ctrl-C that interrupts join() can mark the
    # thread as stopped while it still runs. The next join() then returns before the cleanup ran.
    thread = threading.Thread(target=target, name="async_tuner-loop", daemon=True)
    # asyncio.run() installs a SIGINT handler that only cancels its main task, which is blocked
    # here in sync code, so Ctrl-C would go unnoticed. Python's default handler raises instead.
    previous: Any = None
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    thread.start()
    try:
        while not finished.wait(JOIN_POLL_INTERVAL):
            pass
    except KeyboardInterrupt:
        interrupts.request()
        finished.wait()
        raise
    finally:
        if in_main_thread and previous is not None:
            signal.signal(signal.SIGINT, previous)
    if "error" in outcome:
        raise outcome["error"]
    if interrupts.requested:
        raise KeyboardInterrupt
    result: T = outcome["result"]
    return result
