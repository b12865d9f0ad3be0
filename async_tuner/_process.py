"""Process workers: evaluate a function in reusable child processes, one call at a time each.

Implementation notes. ``multiprocessing`` would be the obvious pool. But its spawn and forkserver
start methods re-import the user's ``__main__`` in every child, which runs an unguarded script's
top-level code again, and its fork method copies the parent's threads and locks in whatever state
they are in. Each worker is therefore a fresh interpreter running ``python -m async_tuner._worker``,
and the parent talks to it over the child's stdin and stdout in frames: an 8-byte big-endian length,
then that many bytes of pickle. The first frame sends the parent's ``sys.path`` and the function,
serialised by cloudpickle, so lambdas, closures and functions defined in ``__main__`` work. Each
later frame carries one call's arguments, and the worker replies with ``("ok", value)`` or
``("error", error_text, traceback_text)``. A worker whose call is cancelled may be hung, and its
pipe may hold half a frame, so it is killed rather than reused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, cast

import anyio
import cloudpickle
from anyio.abc import ByteReceiveStream, ByteSendStream, Process
from anyio.streams.buffered import BufferedByteReceiveStream

from ._threads import EvaluationError

logger = logging.getLogger(__name__)

# Header of every frame in both directions: the length in bytes of the pickle that follows.
FRAME_HEADER = struct.Struct(">Q")

WORKER_MODULE = "async_tuner._worker"

# Errors that mean the worker's pipes closed under a call: the worker exited or was killed.
_PIPE_ERRORS = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.IncompleteRead,
    BrokenPipeError,
    ConnectionResetError,
)


class WorkerEvaluationError(EvaluationError):
    """Raised by ProcessWorkers.run when the evaluation failed in the worker.

    Only text crosses the process boundary, never the exception object. ``error`` is
    ``"TypeName: message"`` of the original exception, or a description of how the worker
    failed, such as ``"worker process exited with code 3"``. ``traceback`` is the formatted
    traceback text from the worker, ``""`` if there is none.
    """

    def __init__(self, error: str, traceback: str = "") -> None:
        super().__init__(error, traceback)


def encode_frame(payload: bytes) -> bytes:
    """Prefix a payload with its length in the frame format that both sides use."""
    return FRAME_HEADER.pack(len(payload)) + payload


async def _receive_frame(stream: BufferedByteReceiveStream) -> bytes:
    header = await stream.receive_exactly(FRAME_HEADER.size)
    (length,) = FRAME_HEADER.unpack(header)
    return await stream.receive_exactly(length)


def _pickle_function(fn: Callable[..., Any]) -> bytes:
    # NOTE: cloudpickle 3.1 sets the file name of every function that it pickles by value
    # (lambdas, closures, functions defined in __main__) to "<dynamic-code>". Traceback lines
    # from such functions name the function and line number, but not the file or source line.
    try:
        function_bytes: bytes = cloudpickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        msg = (
            f"fn must be serialisable by cloudpickle to run in worker processes (got {fn!r}, "
            f"which raised {type(exc).__name__}: {exc}). Create objects that cannot be pickled, "
            "such as locks, open files and connections, inside fn instead of capturing them."
        )
        raise TypeError(msg) from exc
    return function_bytes


def _encode_request(args: tuple[Any, ...]) -> bytes:
    try:
        payload: bytes = cloudpickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        msg = f"{type(exc).__name__}: the arguments cannot be pickled for the worker ({exc})"
        raise WorkerEvaluationError(msg) from None
    return encode_frame(payload)


def _decode_reply(reply: bytes) -> Any:
    try:
        message = pickle.loads(reply)
    except Exception as exc:
        msg = f"{type(exc).__name__}: the result from the worker cannot be unpickled ({exc})"
        raise WorkerEvaluationError(msg) from None

    if message[0] == "ok":
        return message[1]

    _status, error, traceback_text = message
    raise WorkerEvaluationError(error, traceback_text)


def _describe_exit(exit_code: int) -> str:
    description = f"worker process exited with code {exit_code}"
    if exit_code < 0:
        with contextlib.suppress(ValueError):  # a signal number that Python has no name for
            description += f" (killed by signal {signal.Signals(-exit_code).name})"
    return description


@dataclasses.dataclass(eq=False)
class _Worker:
    process: Process
    requests: ByteSendStream
    replies: BufferedByteReceiveStream


class ProcessWorkers:
    """Pool of up to ``num_workers`` child processes that each call ``fn(*args)`` on request.

    Workers start on first need and are reused across calls. Because each worker is a fresh
    interpreter that never runs the caller's ``__main__``, scripts need no
    ``if __name__ == "__main__"`` guard. Leaving the context kills every worker, so ``finally``
    blocks and ``atexit`` handlers in a running ``fn`` do not run. A worker prints to the
    parent's stderr, including what ``fn`` prints to stdout.

    Args:
        fn: The function to evaluate. It must be serialisable by cloudpickle, and so must its
            arguments and results.
        num_workers: Maximum number of worker processes alive at once.

    Raises:
        TypeError: ``fn`` is not callable or ``num_workers`` is not an integer.
        ValueError: ``num_workers`` is less than 1.
    """

    def __init__(self, fn: Callable[..., Any], num_workers: int) -> None:
        if not callable(fn):
            msg = f"fn must be callable (got {fn!r} of type {type(fn).__name__})"
            raise TypeError(msg)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int):
            msg = f"num_workers must be an integer (got {num_workers!r})"
            raise TypeError(msg)
        if num_workers < 1:
            msg = f"num_workers must be a positive integer (got {num_workers})"
            raise ValueError(msg)

        self._fn = fn
        self._num_workers = num_workers
        self._function_bytes = b""
        self._limiter: anyio.CapacityLimiter | None = None
        self._closed = False
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()

    async def __aenter__(self) -> ProcessWorkers:
        """Serialise ``fn`` once for all workers, which start on first need.

        Raises:
            TypeError: ``fn`` cannot be serialised by cloudpickle.
            RuntimeError: The pool was entered before.
        """
        if self._limiter is not None:
            msg = "a ProcessWorkers instance can be entered only once"
            raise RuntimeError(msg)

        self._function_bytes = _pickle_function(self._fn)
        self._limiter = anyio.CapacityLimiter(self._num_workers)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        exc_traceback: TracebackType | None,
    ) -> None:
        """Kill every worker, busy or idle, and wait for each to exit, shielded from cancellation.

        A ``run`` still waiting on a killed worker raises WorkerEvaluationError.
        """
        self._closed = True
        workers = list(self._workers)
        self._idle.clear()
        with anyio.CancelScope(shield=True):
            for worker in workers:
                _kill(worker.process)
            for worker in workers:
                await self._stop_worker(worker)

    # The timeout must start after a new worker has loaded fn, which a caller cannot see.
    async def run(self, *args: Any, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Call ``fn(*args)`` in an idle or a newly started worker and return the result.

        Concurrent calls beyond ``num_workers`` wait for a worker to become idle. If the caller
        is cancelled while the call runs, the worker is killed and waited for, shielded from
        the cancellation, and the cancellation propagates. The next call starts a new worker.

        Args:
            args: The arguments of ``fn``.
            timeout: Seconds the call may run, counted once a worker has loaded ``fn``, so a
                worker's start-up does not count. A call that runs longer has its worker killed.

        Raises:
            WorkerEvaluationError: ``fn`` raised, the arguments or the result could not be
                pickled, or the worker exited during the call.
            TimeoutError: The call ran longer than ``timeout``.
            RuntimeError: The pool is used outside its ``async with`` block.
        """
        limiter = self._check_open()
        request = _encode_request(args)
        async with limiter:
            self._check_open()
            worker = await self._take_idle_worker()
            if worker is None:
                worker = await self._start_worker()
                await self._exchange(worker, self._init_frame())

            with anyio.move_on_after(timeout) as deadline:
                reply = await self._exchange(worker, request)
            if deadline.cancelled_caught:
                msg = f"the call ran longer than {timeout} s"
                raise TimeoutError(msg)
            self._idle.append(worker)

        return _decode_reply(reply)

    def _check_open(self) -> anyio.CapacityLimiter:
        if self._limiter is None or self._closed:
            msg = "ProcessWorkers.run() must be called inside 'async with ProcessWorkers(...)'"
            raise RuntimeError(msg)
        return self._limiter

    async def _take_idle_worker(self) -> _Worker | None:
        """Return the most recently used live idle worker, reaping any that died while idle."""
        while self._idle:
            worker = self._idle.pop()
            if worker.process.returncode is None:
                return worker

            exit_code = await self._stop_worker(worker)
            logger.warning(
                "idle worker process %d exited with code %d, so a new one will take its place",
                worker.process.pid,
                exit_code,
            )
        return None

    def _init_frame(self) -> bytes:
        # sys.path is read now, not at __aenter__, so a worker started later gets later changes.
        return encode_frame(pickle.dumps((sys.path, self._function_bytes)))

    async def _start_worker(self) -> _Worker:
        # NOTE: the worker imports async_tuner through its own default sys.path (the current
        # directory, PYTHONPATH, site-packages) before it receives the parent's sys.path. A parent
        # that found async_tuner only through a sys.path change made at run time gets workers that
        # exit with code 1 and print the ImportError to stderr.
        command = [sys.executable, "-m", WORKER_MODULE, str(os.getpid())]

        # Shielded so that a cancellation cannot land after the process started but before its
        # handle is stored, which would leave the process running.
        with anyio.CancelScope(shield=True):
            process = await anyio.open_process(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None
            )
        worker = _Worker(
            process=process,
            requests=cast(ByteSendStream, process.stdin),
            replies=BufferedByteReceiveStream(cast(ByteReceiveStream, process.stdout)),
        )
        self._workers.add(worker)
        logger.debug("worker process %d started", process.pid)
        return worker

    async def _exchange(self, worker: _Worker, request: bytes) -> bytes:
        try:
            await worker.requests.send(request)
            return await _receive_frame(worker.replies)
        except _PIPE_ERRORS as exc:
            exit_code = await self._stop_worker(worker)
            raise WorkerEvaluationError(_describe_exit(exit_code)) from exc
        except BaseException:
            # Cancelled during the call: the worker may be hung, and its pipes may hold half a
            # frame, so it cannot be reused.
            await self._stop_worker(worker)
            raise

    async def _stop_worker(self, worker: _Worker) -> int:
        """Kill the worker unless it has exited, wait for it, and return its exit code."""
        self._workers.discard(worker)
        with anyio.CancelScope(shield=True):
            _kill(worker.process)
            await worker.process.aclose()
            exit_code = await worker.process.wait()

        logger.debug("worker process %d stopped with exit code %d", worker.process.pid, exit_code)
        return exit_code


def _kill(process: Process) -> None:
    """Kill the process unless it is known to have exited.

    A process that has already started to exit keeps its own exit code.
    """
    if process.returncode is not None:
        return

    if sys.platform == "win32":  # NOTE: the Windows path has never been run.
        process.kill()
        return

    # Not process.kill(): Popen.send_signal() polls first, and on asyncio that reaps a child
    # which has just exited behind the child watcher's back. The watcher then logs a warning
    # and reports exit code 255 in place of the real one.
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)
