"""Tests of the process worker backend against real child processes."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import psutil
import pytest

from async_tuner._process import ProcessWorkers, WorkerEvaluationError
from async_tuner._worker import PARENT_POLL_INTERVAL_S

# Generous bounds so that a slow machine does not fail the tests. The code under test must meet
# each one long before it runs out.
BARRIER_TIMEOUT_S = 20.0
PID_FILE_TIMEOUT_S = 20.0
SCRIPT_TIMEOUT_S = 30.0
ORPHAN_EXIT_TIMEOUT_S = 10 * PARENT_POLL_INTERVAL_S
POLL_INTERVAL_S = 0.05


def _fail_with_value_error(message: str) -> None:
    raise ValueError(message)


def _append_pid(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _wait_at_barrier(directory: str, parties: int) -> int:
    """Wait until `parties` workers have arrived, so the calls provably overlap in time."""
    Path(directory, str(os.getpid())).touch()
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while len(os.listdir(directory)) < parties:
        if time.monotonic() > deadline:
            msg = f"only {len(os.listdir(directory))} of {parties} workers reached the barrier"
            raise TimeoutError(msg)
        time.sleep(POLL_INTERVAL_S)
    return os.getpid()


def _behave(action: str, *args: Any) -> Any:
    """Worker function with one behaviour per action, so one pool can exercise several."""
    if action == "pid":
        return os.getpid()
    if action == "square":
        return args[0] * args[0]
    if action == "raise":
        _fail_with_value_error(args[0])
    if action == "exit":
        os._exit(args[0])
    if action == "kill_self":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "lock":
        return threading.Lock()
    if action == "hang":
        _append_pid(args[0])
        time.sleep(3600)
    if action == "print":
        for line_number in range(args[1]):
            print(args[0], line_number)  # noqa: T201 (the test checks where the output goes)
        return os.getpid()
    if action == "read_stdin":
        return sys.stdin.read(), os.read(0, 100)
    if action == "barrier":
        return _wait_at_barrier(args[0], args[1])
    msg = f"unknown action {action!r}"
    raise ValueError(msg)


def _child_pids() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def _is_gone(pid: int) -> bool:
    """Whether the process has exited: reaped, or a zombie that no one has reaped yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _read_pids(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split()]


def _wait_until(condition: Callable[[], bool], timeout_s: float, description: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting until {description}")
        time.sleep(POLL_INTERVAL_S)


async def _wait_for_pids(path: Path, count: int) -> list[int]:
    """Wait in a thread, since nothing signals the event loop when a worker writes the file."""
    await anyio.to_thread.run_sync(
        _wait_until,
        lambda: len(_read_pids(path)) >= count,
        PID_FILE_TIMEOUT_S,
        f"{count} worker pids are in {path}",
    )
    return _read_pids(path)


def test_process_workers_rejects_invalid_arguments() -> None:
    with pytest.raises(TypeError, match=r"fn must be callable \(got 3 of type int\)"):
        ProcessWorkers(3, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"num_workers must be a positive integer \(got 0\)"):
        ProcessWorkers(_behave, 0)
    with pytest.raises(TypeError, match=r"num_workers must be an integer \(got True\)"):
        ProcessWorkers(_behave, True)
    with pytest.raises(TypeError, match=r"num_workers must be an integer \(got 1.5\)"):
        ProcessWorkers(_behave, 1.5)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_process_workers_run_outside_context() -> None:
    workers = ProcessWorkers(_behave, 1)
    with pytest.raises(RuntimeError, match="inside 'async with"):
        await workers.run("pid")

    async with workers:
        pass

    with pytest.raises(RuntimeError, match="inside 'async with"):
        await workers.run("pid")
    with pytest.raises(RuntimeError, match="entered only once"):
        await workers.__aenter__()


@pytest.mark.anyio
async def test_process_workers_unpicklable_function() -> None:
    lock = threading.Lock()

    def use_lock() -> None:
        with lock:
            pass

    with pytest.raises(TypeError, match="fn must be serialisable by cloudpickle"):
        async with ProcessWorkers(use_lock, 1):
            pass


@pytest.mark.anyio
async def test_run_lambda_closure_and_module_function() -> None:
    offset = 7

    def add_offset(x: int) -> int:
        return x + offset

    async with ProcessWorkers(lambda x: x * 2, 1) as workers:
        assert await workers.run(21) == 21 * 2
    async with ProcessWorkers(add_offset, 1) as workers:
        assert await workers.run(5) == 5 + offset
    async with ProcessWorkers(_behave, 1) as workers:
        assert await workers.run("square", 9) == 9 * 9
        assert await workers.run("pid") != os.getpid()


PROBE_MODULE_NAME = "process_worker_probe_module"

PROBE_MODULE_SOURCE = """\
import os

IMPORTED_IN_PID = os.getpid()


def importing_pid():
    return IMPORTED_IN_PID
"""


@pytest.fixture
def probe_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """Import a module from a directory that only this process's sys.path contains."""
    (tmp_path / f"{PROBE_MODULE_NAME}.py").write_text(PROBE_MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(PROBE_MODULE_NAME)
    try:
        yield module
    finally:
        del sys.modules[PROBE_MODULE_NAME]


@pytest.mark.anyio
async def test_run_uses_parent_sys_path(probe_module: ModuleType) -> None:
    async with ProcessWorkers(probe_module.importing_pid, 1) as workers:
        importing_pid = await workers.run()

    # Pickled by value, the function would carry this process's pid in its globals. Pickled by
    # reference, it makes the worker import the module, which works only with this sys.path.
    assert importing_pid != os.getpid()


@pytest.mark.anyio
async def test_run_function_not_importable_in_worker(
    probe_module: ModuleType, tmp_path: Path
) -> None:
    sys.path.remove(str(tmp_path))

    async with ProcessWorkers(probe_module.importing_pid, 1) as workers:
        for _ in range(2):
            with pytest.raises(WorkerEvaluationError) as exc_info:
                await workers.run()
            assert exc_info.value.error == (
                f"ModuleNotFoundError: No module named '{PROBE_MODULE_NAME}'"
            )
            assert "Traceback" in exc_info.value.traceback


@pytest.mark.anyio
async def test_run_exception_becomes_error_text() -> None:
    message = "score went negative"
    async with ProcessWorkers(_behave, 1) as workers:
        with pytest.raises(WorkerEvaluationError) as exc_info:
            await workers.run("raise", message)
        worker_pid = await workers.run("pid")

    error = exc_info.value
    assert error.error == f"ValueError: {message}"
    assert str(error) == error.error
    assert "in _fail_with_value_error" in error.traceback
    assert "in _behave" in error.traceback
    assert Path(__file__).name in error.traceback
    assert error.traceback.rstrip().endswith(f"ValueError: {message}")
    assert worker_pid != os.getpid()


@pytest.mark.anyio
async def test_run_lambda_exception_traceback() -> None:
    async with ProcessWorkers(lambda key: {}[key], 1) as workers:
        with pytest.raises(WorkerEvaluationError) as exc_info:
            await workers.run("missing")

    assert exc_info.value.error == f"KeyError: {KeyError('missing')}"
    assert "in <lambda>" in exc_info.value.traceback


@pytest.mark.anyio
async def test_run_unpicklable_result_and_arguments() -> None:
    lock_type = type(threading.Lock())
    async with ProcessWorkers(_behave, 1) as workers:
        first_pid = await workers.run("pid")
        with pytest.raises(WorkerEvaluationError) as result_error:
            await workers.run("lock")
        with pytest.raises(WorkerEvaluationError) as argument_error:
            await workers.run("square", threading.Lock())
        second_pid = await workers.run("pid")

    assert f"{lock_type.__module__}.{lock_type.__qualname__}" in result_error.value.error
    assert "cannot be pickled" in result_error.value.error
    assert "arguments cannot be pickled" in argument_error.value.error
    assert second_pid == first_pid


@pytest.mark.anyio
async def test_run_worker_exit_reports_code() -> None:
    exit_code = 3
    async with ProcessWorkers(_behave, 1) as workers:
        first_pid = await workers.run("pid")
        with pytest.raises(WorkerEvaluationError) as exit_error:
            await workers.run("exit", exit_code)
        second_pid = await workers.run("pid")
        with pytest.raises(WorkerEvaluationError) as kill_error:
            await workers.run("kill_self")
        assert await workers.run("square", 4) == 16

    assert exit_error.value.error == f"worker process exited with code {exit_code}"
    assert exit_error.value.traceback == ""
    assert _is_gone(first_pid)
    assert second_pid != first_pid
    assert kill_error.value.error == (
        f"worker process exited with code {-signal.SIGKILL} (killed by signal SIGKILL)"
    )


@pytest.mark.anyio
async def test_run_replaces_worker_killed_while_idle(caplog: pytest.LogCaptureFixture) -> None:
    async with ProcessWorkers(_behave, 1) as workers:
        first_pid = await workers.run("pid")
        os.kill(first_pid, signal.SIGKILL)
        await anyio.to_thread.run_sync(
            _wait_until, lambda: _is_gone(first_pid), PID_FILE_TIMEOUT_S, "the worker exited"
        )
        # Let the event loop process the exit before the next call looks at the worker.
        await anyio.sleep(POLL_INTERVAL_S)

        second_pid = await workers.run("pid")

    assert second_pid != first_pid
    assert any(
        record.levelno == logging.WARNING
        and f"idle worker process {first_pid} exited with code {-signal.SIGKILL}"
        in record.getMessage()
        for record in caplog.records
    )


@pytest.mark.anyio
async def test_run_concurrent_calls_use_distinct_workers(tmp_path: Path) -> None:
    num_workers = 3
    pids: list[int] = []

    async def run_at_barrier(workers: ProcessWorkers, directory: Path) -> None:
        pids.append(await workers.run("barrier", str(directory), num_workers))

    async with ProcessWorkers(_behave, num_workers) as workers:
        for round_number in range(2):
            directory = tmp_path / f"round{round_number}"
            directory.mkdir()
            async with anyio.create_task_group() as task_group:
                for _ in range(num_workers):
                    task_group.start_soon(run_at_barrier, workers, directory)
        live_children = _child_pids()

    assert len(pids) == 2 * num_workers
    assert len(set(pids[:num_workers])) == num_workers
    assert set(pids[num_workers:]) == set(pids[:num_workers])
    assert live_children == set(pids)


@pytest.mark.anyio
async def test_run_more_calls_than_workers_wait() -> None:
    num_workers = 2
    num_calls = 5
    pids: list[int] = []

    async def run_square(workers: ProcessWorkers, x: int) -> None:
        assert await workers.run("square", x) == x * x
        pids.append(await workers.run("pid"))

    async with (
        ProcessWorkers(_behave, num_workers) as workers,
        anyio.create_task_group() as task_group,
    ):
        for x in range(num_calls):
            task_group.start_soon(run_square, workers, x)

    assert len(pids) == num_calls
    assert len(set(pids)) <= num_workers


@pytest.mark.anyio
async def test_process_workers_start_lazily_and_clean_up() -> None:
    async with ProcessWorkers(_behave, 2) as workers:
        assert _child_pids() == set()
        worker_pid = await workers.run("pid")
        assert _child_pids() == {worker_pid}

    assert _child_pids() == set()
    assert not psutil.pid_exists(worker_pid)


@pytest.mark.anyio
async def test_process_workers_log_start_and_stop(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="async_tuner._process")
    async with ProcessWorkers(_behave, 1) as workers:
        worker_pid = await workers.run("pid")

    messages = [record.getMessage() for record in caplog.records]
    assert f"worker process {worker_pid} started" in messages
    assert f"worker process {worker_pid} stopped with exit code {-signal.SIGKILL}" in messages


@pytest.mark.anyio
async def test_run_cancelled_kills_hung_worker(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    async with ProcessWorkers(_behave, 1) as workers:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(workers.run, "hang", str(pid_file))
            [hung_pid] = await _wait_for_pids(pid_file, 1)
            task_group.cancel_scope.cancel()

        assert not psutil.pid_exists(hung_pid)
        assert _child_pids() == set()
        next_pid = await workers.run("pid")

    assert next_pid != hung_pid


@pytest.mark.anyio
async def test_run_timeout_kills_worker(tmp_path: Path) -> None:
    timeout_s = 0.5
    async with ProcessWorkers(_behave, 1) as workers:
        first_pid = await workers.run("pid")
        with anyio.move_on_after(timeout_s) as scope:
            await workers.run("hang", str(tmp_path / "pids"))

        assert scope.cancelled_caught
        assert not psutil.pid_exists(first_pid)
        assert await workers.run("square", 3) == 9

    assert _child_pids() == set()


@pytest.mark.anyio
async def test_run_cancelled_at_any_point_leaves_no_process() -> None:
    delays_s = [0, 0.001, 0.01, 0.05, 0.1, 0.3]
    async with ProcessWorkers(_behave, 1) as workers:
        for delay_s in delays_s:
            with anyio.move_on_after(delay_s):
                await workers.run("pid")
            assert len(_child_pids()) <= 1
        assert await workers.run("square", 5) == 25

    assert _child_pids() == set()


@pytest.mark.anyio
async def test_worker_ignores_sigint() -> None:
    async with ProcessWorkers(_behave, 1) as workers:
        worker_pid = await workers.run("pid")
        os.kill(worker_pid, signal.SIGINT)
        assert await workers.run("pid") == worker_pid


@pytest.mark.anyio
async def test_worker_print_goes_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    marker = "printed-by-the-evaluation"
    num_lines = 2000
    async with ProcessWorkers(_behave, 1) as workers:
        worker_pid = await workers.run("print", marker, num_lines)
        assert await workers.run("pid") == worker_pid

    captured = capfd.readouterr()
    assert captured.err.count(marker) == num_lines
    assert f"{marker} {num_lines - 1}\n" in captured.err
    assert marker not in captured.out


@pytest.mark.anyio
async def test_worker_stdin_is_devnull() -> None:
    async with ProcessWorkers(_behave, 1) as workers:
        assert await workers.run("read_stdin") == ("", b"")
        assert await workers.run("square", 6) == 36


MAIN_SCRIPT = """\
import sys

import anyio

from async_tuner._process import ProcessWorkers

print("script top level ran", file=sys.stderr)


class Point:
    def __init__(self, x):
        self.x = x


def make_point(x):
    return Point(x * x)


async def main():
    async with ProcessWorkers(make_point, 2) as workers:
        points = [await workers.run(x) for x in range(4)]
    print([point.x for point in points], all(type(point) is Point for point in points))


anyio.run(main)
"""


@pytest.mark.slow
def test_main_script_without_guard(tmp_path: Path) -> None:
    script = tmp_path / "tune_script.py"
    script.write_text(MAIN_SCRIPT)

    completed = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )

    expected_output = f"{[x * x for x in range(4)]} True\n"
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == expected_output
    assert completed.stderr.count("script top level ran") == 1


ORPHAN_SCRIPT = """\
import os
import sys
import time

import anyio

from async_tuner._process import ProcessWorkers


def hang(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, f"{os.getpid()}\\n".encode())
    os.close(fd)
    time.sleep(3600)


async def main():
    async with ProcessWorkers(hang, 2) as workers:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(workers.run, sys.argv[1])
            task_group.start_soon(workers.run, sys.argv[1])


anyio.run(main)
"""


@pytest.mark.slow
def test_workers_exit_when_parent_killed(tmp_path: Path) -> None:
    script = tmp_path / "orphan_script.py"
    script.write_text(ORPHAN_SCRIPT)
    pid_file = tmp_path / "pids"

    script_process = subprocess.Popen([sys.executable, str(script), str(pid_file)])
    try:
        _wait_until(
            lambda: len(_read_pids(pid_file)) == 2, PID_FILE_TIMEOUT_S, "both workers started"
        )
    finally:
        script_process.kill()
        script_process.wait()
    worker_pids = _read_pids(pid_file)

    _wait_until(
        lambda: all(_is_gone(pid) for pid in worker_pids),
        ORPHAN_EXIT_TIMEOUT_S,
        f"the orphaned workers {worker_pids} exited",
    )
    assert len(set(worker_pids)) == 2
