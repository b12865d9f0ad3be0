"""Worker process entry point: call one function on each argument tuple that the parent sends.

ProcessWorkers starts this module as ``python -m async_tuner._worker PARENT_PID``. Both
directions use the frames of ``async_tuner._process``: an 8-byte big-endian length, then a
pickle. The first frame from the parent is ``(sys_path, function_bytes)``, where
``function_bytes`` is the function serialised by cloudpickle. Each later frame is one call's
argument tuple, and the worker replies with ``("ok", value)`` or
``("error", error_text, traceback_text)``. At the end of input, ``main`` returns.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

import cloudpickle

from async_tuner._process import FRAME_HEADER, encode_frame

PARENT_POLL_INTERVAL_S = 0.5  # seconds between checks that the parent process is still alive

PARENT_GONE_EXIT_CODE = 1  # exit code of a worker that outlived its parent

USAGE = "usage: python -m async_tuner._worker PARENT_PID (ProcessWorkers starts this module)"


def main(argv: list[str]) -> None:
    """Serve calls from the parent until the end of input."""
    if len(argv) != 2 or not argv[1].isdigit():
        sys.exit(USAGE)

    # A Ctrl-C in the terminal goes to the whole process group. Only the parent reacts to it,
    # and it kills the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _start_parent_watchdog(int(argv[1]))
    requests, replies = _take_protocol_streams()

    init = _read_frame(requests)
    if init is None:
        return
    function_or_error = _load_function(init)
    # An empty frame signals to the parent that the function is loaded, so that the time this took
    # does not count toward the first call's timeout.
    replies.write(encode_frame(b""))
    replies.flush()

    while (payload := _read_frame(requests)) is not None:
        if isinstance(function_or_error, bytes):
            reply = function_or_error
        else:
            reply = _evaluate(function_or_error, payload)
        # User output goes first, so it is on stderr when the parent gets the result.
        _flush_user_output()
        replies.write(encode_frame(reply))
        replies.flush()


def _start_parent_watchdog(parent_pid: int) -> None:
    """Start a daemon thread that ends this process once the parent has exited.

    The thread notices within PARENT_POLL_INTERVAL_S, even while the evaluation hangs.
    """

    def watch_parent() -> None:
        # NOTE: on Windows os.getppid() keeps returning the original parent's id after that
        # parent exits, so this check never fires there. The tests run on Linux only.
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_INTERVAL_S)
        os._exit(PARENT_GONE_EXIT_CODE)

    thread = threading.Thread(target=watch_parent, name="async_tuner-parent-watchdog", daemon=True)
    thread.start()


def _take_protocol_streams() -> tuple[BinaryIO, BinaryIO]:
    """Move the protocol off fds 0 and 1, so that user code cannot read or corrupt it.

    Afterwards fd 1, and therefore ``print()``, writes to stderr. Fd 0, which ``sys.stdin``
    wraps, reads from ``os.devnull``. Subprocesses that the function starts do not inherit the
    duplicated descriptors, because ``os.dup`` makes them non-inheritable.
    """
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)

    # Python buffers stdout in blocks because it started as a pipe. Line buffering makes what the
    # function prints appear on stderr as it happens.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    return requests, replies


def _read_frame(stream: BinaryIO) -> bytes | None:
    """Return the next frame's payload, or None at the end of input."""
    header = stream.read(FRAME_HEADER.size)
    if len(header) < FRAME_HEADER.size:
        return None

    (length,) = FRAME_HEADER.unpack(header)
    payload = stream.read(length)
    if len(payload) < length:
        return None
    return payload


def _load_function(init: bytes) -> Callable[..., Any] | bytes:
    """Set the parent's sys.path and unpickle the function.

    Returns:
        The function, or, if it cannot be unpickled, the error reply that every call receives.
    """
    sys_path, function_bytes = pickle.loads(init)
    sys.path[:] = sys_path
    try:
        function: Callable[..., Any] = pickle.loads(function_bytes)
    except BaseException as exc:  # the reply must describe any failure, even SystemExit
        return _dump_error(exc, skip_frames=0)
    return function


def _evaluate(function: Callable[..., Any], payload: bytes) -> bytes:
    """Call the function on the pickled argument tuple and return the pickled reply."""
    try:
        args = pickle.loads(payload)
        value = function(*args)
    except BaseException as exc:  # the reply must describe any failure, even SystemExit
        # The first frame is this function's own, not the user's.
        return _dump_error(exc, skip_frames=1)

    try:
        reply: bytes = cloudpickle.dumps(("ok", value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        error = (
            f"{type(exc).__name__}: the result of type {_type_name(value)} cannot be pickled "
            f"to send it to the parent ({_safe_str(exc)})"
        )
        return pickle.dumps(("error", error, ""), protocol=pickle.HIGHEST_PROTOCOL)
    return reply


def _dump_error(exc: BaseException, skip_frames: int) -> bytes:
    """Pickle an error reply with the exception's text and formatted traceback."""
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next

    error = f"{type(exc).__name__}: {_safe_str(exc)}"
    traceback_text = "".join(traceback.format_exception(type(exc), exc, tb))
    return pickle.dumps(("error", error, traceback_text), protocol=pickle.HIGHEST_PROTOCOL)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a user's __str__ must not end the worker
        return f"<str() of the {type(exc).__name__} failed>"


def _type_name(value: object) -> str:
    value_type = type(value)
    if value_type.__module__ == "builtins":
        return value_type.__qualname__
    return f"{value_type.__module__}.{value_type.__qualname__}"


def _flush_user_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        # The function may have closed or replaced the stream, which must not end the worker.
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


if __name__ == "__main__":
    main(sys.argv)
