"""Tests of stopping a run early: cancellation of tune_async(), Ctrl-C and kill -9.

Every run here is a grid over one discrete parameter, so trial ``i`` evaluates ``{"i": i}``.
The first trials finish at once and every later one hangs, so a run is always stopped with
hung evaluations in flight.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from async_tuner import GridTuner, TrialStatus
from async_tuner._journal import read_trials
from async_tuner._runner import Interrupts

CONFIG_COUNT = 12
QUICK = 2  # configs 0 .. QUICK - 1 finish at once, and every later one hangs
NUM_WORKERS = 2
HANG_S = 300.0  # far longer than any test, so a hung evaluation ends only when stopped

# Generous bounds: each fails a test only if the code under test hangs or is very slow.
READY_DEADLINE_S = 20.0  # for a run to finish the quick trials and start the hung ones
STOP_DEADLINE_S = 5.0  # for a stopped run to return, or a stopped script to exit
ORPHAN_DEADLINE_S = 5.0  # for the worker processes of a stopped run to be gone
POLL_INTERVAL_S = 0.02

EXECUTORS = ["async", "thread", "process"]


def _is_running(pid: int) -> bool:
    """Whether a process with this id exists and is not a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_until(condition: Callable[[], bool], deadline_s: float) -> bool:
    """Poll ``condition`` until it is true or ``deadline_s`` has passed, and return its value."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        time.sleep(POLL_INTERVAL_S)
    return True


def _journal_lines(run_path: Path) -> list[str]:
    return (run_path / "trials.jsonl").read_text(encoding="utf-8").splitlines()


def _pids(pid_file: Path) -> dict[int, int]:
    """Map each config that started to the pid of the process that evaluated it."""
    if not pid_file.exists():
        return {}
    pairs = (line.split() for line in pid_file.read_text(encoding="utf-8").splitlines())
    return {int(config): int(pid) for config, pid in pairs}


# Cancelling tune_async()


class Probe:
    """The evaluation of one test run, and what it saw."""

    def __init__(self, executor: str, tmp_path: Path) -> None:
        self.executor = executor
        self.pid_file = tmp_path / "pids.txt"
        self.started: list[int] = []
        self.cancelled: list[int] = []
        self.release = threading.Event()  # ends hung thread evaluations at teardown

    def eval_fn(self) -> Callable[[dict[str, Any]], Any]:
        if self.executor == "async":
            return self._async_eval
        if self.executor == "thread":
            return self._thread_eval
        return _process_eval(self.pid_file)

    async def _async_eval(self, config: dict[str, Any]) -> float:
        self.started.append(config["i"])
        if config["i"] >= QUICK:
            try:
                await anyio.sleep(HANG_S)
            except anyio.get_cancelled_exc_class():
                self.cancelled.append(config["i"])
                raise
        return float(config["i"])

    def _thread_eval(self, config: dict[str, Any]) -> float:
        self.started.append(config["i"])
        if config["i"] >= QUICK:
            self.release.wait(HANG_S)
        return float(config["i"])

    def started_count(self) -> int:
        if self.executor == "process":
            return len(_pids(self.pid_file))
        return len(self.started)


def _process_eval(pid_file: Path) -> Callable[[dict[str, Any]], float]:
    # Defined inside a function, so cloudpickle sends it by value and the worker does not
    # import this test module.
    def evaluate(config: dict[str, Any]) -> float:
        with open(pid_file, "a", encoding="utf-8") as file:
            file.write(f"{config['i']} {os.getpid()}\n")
        if config["i"] >= QUICK:
            time.sleep(HANG_S)
        return float(config["i"])

    return evaluate


@pytest.fixture(params=EXECUTORS)
def probe(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Probe]:
    probe = Probe(request.param, tmp_path)
    yield probe
    probe.release.set()


def _logged_tuner(probe: Probe, tmp_path: Path) -> GridTuner:
    return GridTuner(
        {"i": list(range(CONFIG_COUNT))},
        probe.eval_fn(),
        budget=CONFIG_COUNT,
        num_workers=NUM_WORKERS,
        executor="thread" if probe.executor == "async" else probe.executor,
        log=True,
        log_dir=tmp_path,
        run_dir="study",
        run_name="run",
        show_loading=False,
    )


def _finished(tuner: GridTuner) -> list[int]:
    return sorted(trial.trial_id for trial in tuner.trials if trial.status != TrialStatus.RUNNING)


async def _when_in_flight(tuner: GridTuner, probe: Probe, stop: Callable[[], object]) -> float:
    """Call ``stop`` once the quick trials have finished and the hung ones run.

    Returns the time of the call, from ``time.monotonic``.
    """

    def in_flight() -> bool:
        return len(_finished(tuner)) >= QUICK and probe.started_count() >= QUICK + NUM_WORKERS

    with anyio.fail_after(READY_DEADLINE_S):
        # Polled, because worker processes have no way to set an event in this process.
        while not in_flight():  # noqa: ASYNC110
            await anyio.sleep(POLL_INTERVAL_S)
    stopped_at = time.monotonic()
    stop()
    return stopped_at


def _check_stopped_run(tuner: GridTuner, probe: Probe, tmp_path: Path) -> None:
    """Assert what must be true after a run with hung trials in flight was stopped."""
    run_path = tmp_path / "study" / "run"
    lines = _journal_lines(run_path)
    records = [json.loads(line) for line in lines]
    hung = list(range(QUICK, QUICK + NUM_WORKERS))

    assert len(lines) == len(_finished(tuner))
    assert sorted(record["trial_id"] for record in records) == _finished(tuner)
    assert _finished(tuner) == list(range(QUICK))
    if probe.executor == "async":
        assert sorted(probe.cancelled) == hung
    if probe.executor == "process":
        pids = _pids(probe.pid_file)
        assert _wait_until(lambda: not psutil.Process().children(), ORPHAN_DEADLINE_S)
        for i in hung:
            assert not _is_running(pids[i])


@pytest.mark.anyio
async def test_cancel_move_on_after(probe: Probe, tmp_path: Path) -> None:
    tuner = _logged_tuner(probe, tmp_path)
    returned = False
    stopped_at = 0.0

    with anyio.move_on_after(HANG_S) as scope:
        async with anyio.create_task_group() as group:

            async def expire_when_in_flight() -> None:
                nonlocal stopped_at
                stopped_at = await _when_in_flight(
                    tuner, probe, lambda: setattr(scope, "deadline", anyio.current_time())
                )

            group.start_soon(expire_when_in_flight)
            await tuner.tune_async()
            returned = True
    elapsed = time.monotonic() - stopped_at

    assert scope.cancelled_caught
    assert not returned
    assert elapsed < STOP_DEADLINE_S
    _check_stopped_run(tuner, probe, tmp_path)


@pytest.mark.anyio
async def test_cancel_task_group(probe: Probe, tmp_path: Path) -> None:
    tuner = _logged_tuner(probe, tmp_path)
    outcome: list[str] = []
    stopped_at = 0.0

    async def run() -> None:
        try:
            await tuner.tune_async()
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
            raise
        outcome.append("returned")

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        stopped_at = await _when_in_flight(tuner, probe, group.cancel_scope.cancel)
    elapsed = time.monotonic() - stopped_at

    assert outcome == ["cancelled"]
    assert elapsed < STOP_DEADLINE_S
    _check_stopped_run(tuner, probe, tmp_path)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_cancel_asyncio_timeout(probe: Probe, tmp_path: Path) -> None:
    tuner = _logged_tuner(probe, tmp_path)
    loop = asyncio.get_running_loop()
    returned = False
    timeouts: list[asyncio.Timeout] = []
    watchers: list[asyncio.Task[float]] = []

    async def tune_within_timeout() -> None:
        nonlocal returned
        async with asyncio.timeout(None) as timeout:
            timeouts.append(timeout)
            watchers.append(
                asyncio.create_task(
                    _when_in_flight(tuner, probe, lambda: timeout.reschedule(loop.time()))
                )
            )
            await tuner.tune_async()
            returned = True

    with pytest.raises(TimeoutError):
        await tune_within_timeout()
    elapsed = time.monotonic() - await watchers[0]

    assert not returned
    assert timeouts[0].expired()
    assert elapsed < STOP_DEADLINE_S
    _check_stopped_run(tuner, probe, tmp_path)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_cancel_asyncio_task(probe: Probe, tmp_path: Path) -> None:
    tuner = _logged_tuner(probe, tmp_path)
    task = asyncio.create_task(tuner.tune_async())

    stopped_at = await _when_in_flight(tuner, probe, task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await task
    elapsed = time.monotonic() - stopped_at

    assert task.cancelled()
    assert elapsed < STOP_DEADLINE_S
    _check_stopped_run(tuner, probe, tmp_path)


# Ctrl-C and kill -9 of a tuning script

INTERRUPTED_EXIT_CODE = 3

SCRIPT = """
import asyncio
import json
import logging
import os
import signal
import sys
import time

# As in a terminal: the test runner may have started this script with SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)

from async_tuner import GridTuner

executor, num_workers, quick, slow_cleanup, in_running_loop, run_root = sys.argv[1:]
num_workers, quick = int(num_workers), int(quick)
pid_file = os.path.join(run_root, "pids.txt")


def evaluate(config):
    with open(pid_file, "a") as file:
        file.write(f"{{config['i']}} {{os.getpid()}}\\n")
    if config["i"] >= quick:
        time.sleep({hang_s})
    return float(config["i"])


class SlowCleanup(logging.Handler):
    # Hangs on the record that the run was cancelled, as a stuck cleanup would. It overrides
    # handle(), not emit(), so that it holds no logging lock that the exit would wait for.
    def handle(self, record):
        if "cancel" in record.getMessage().lower():
            open(os.path.join(run_root, "cleanup-started"), "w").close()
            time.sleep({hang_s})
        return True


if slow_cleanup == "1":
    logging.getLogger("async_tuner").setLevel(logging.INFO)
    logging.getLogger("async_tuner").addHandler(SlowCleanup())

tuner = GridTuner(
    {{"i": list(range({config_count}))}},
    evaluate,
    budget={config_count},
    num_workers=num_workers,
    executor=executor,
    log=True,
    log_dir=run_root,
    run_dir="study",
    run_name="run",
    show_loading=False,
)


async def tune_in_running_loop():
    # tune() called where an event loop already runs, as in a notebook cell.
    return tuner.tune()


try:
    if in_running_loop == "1":
        asyncio.new_event_loop().run_until_complete(tune_in_running_loop())
    else:
        tuner.tune()
except KeyboardInterrupt:
    finished = sum(trial.status != "running" for trial in list(tuner.trials))
    print(json.dumps({{"finished": finished}}), flush=True)
    sys.exit({interrupted_exit_code})
print(json.dumps({{"finished": None}}), flush=True)
"""


class Script:
    """A tuning script started in a subprocess, with its run folder under ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        executor: str,
        num_workers: int = NUM_WORKERS,
        slow_cleanup: bool = False,
        in_running_loop: bool = False,
    ) -> None:
        self.root = root
        self.num_workers = num_workers
        self.run_path = root / "study" / "run"
        self.pid_file = root / "pids.txt"
        path = root / "tune_script.py"
        path.write_text(
            textwrap.dedent(
                SCRIPT.format(
                    hang_s=HANG_S,
                    config_count=CONFIG_COUNT,
                    interrupted_exit_code=INTERRUPTED_EXIT_CODE,
                )
            ),
            encoding="utf-8",
        )
        self.stdout_path = root / "stdout.txt"
        self.stderr_path = root / "stderr.txt"
        arguments = [
            executor,
            str(num_workers),
            str(QUICK),
            "1" if slow_cleanup else "0",
            "1" if in_running_loop else "0",
            str(root),
        ]
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(path), *arguments], stdout=stdout, stderr=stderr
            )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_until_in_flight(self) -> None:
        """Wait until the quick trials are in the journal and the hung ones have started."""

        def in_flight() -> bool:
            journal = self.run_path / "trials.jsonl"
            return (
                journal.exists()
                and len(_journal_lines(self.run_path)) >= QUICK
                and len(_pids(self.pid_file)) >= QUICK + self.num_workers
            )

        if not _wait_until(in_flight, READY_DEADLINE_S):
            self.kill()
            pytest.fail(f"the script made no progress; its stderr:\n{self.stderr()}")

    def wait_for_file(self, name: str) -> None:
        if not _wait_until((self.root / name).exists, READY_DEADLINE_S):
            self.kill()
            pytest.fail(f"the script never wrote {name}; its stderr:\n{self.stderr()}")

    def wait_for_exit(self) -> int | None:
        """Return the exit code, or None if the script is still running after the deadline."""
        try:
            return self.process.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def output(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.stdout_path.read_text(encoding="utf-8"))
        return result

    def worker_pids(self) -> set[int]:
        """Pids of the processes that ran evaluations, the script itself left out."""
        return set(_pids(self.pid_file).values()) - {self.process.pid}


@pytest.fixture
def scripts() -> Iterator[list[Script]]:
    """Scripts that a test starts; any still running at teardown are killed."""
    started: list[Script] = []
    yield started
    for script in started:
        script.kill()


def _check_interrupted_script(script: Script, exit_code: int | None) -> None:
    """Assert what must be true after Ctrl-C stopped a tuning script."""
    lines = _journal_lines(script.run_path)
    worker_pids = script.worker_pids()

    assert exit_code == INTERRUPTED_EXIT_CODE, script.stderr()
    for line in lines:
        assert isinstance(json.loads(line), dict)
    assert _wait_until(lambda: not any(_is_running(pid) for pid in worker_pids), ORPHAN_DEADLINE_S)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_ctrl_c_stops_script(executor: str, tmp_path: Path, scripts: list[Script]) -> None:
    script = Script(tmp_path, executor=executor)
    scripts.append(script)

    script.wait_until_in_flight()
    script.process.send_signal(signal.SIGINT)
    exit_code = script.wait_for_exit()

    _check_interrupted_script(script, exit_code)
    assert len(_journal_lines(script.run_path)) == script.output()["finished"]
    assert (script.run_path / "tuner_report.json").exists()


@pytest.mark.slow
def test_ctrl_c_inline_slow_evaluation(tmp_path: Path, scripts: list[Script]) -> None:
    # One thread worker and no timeout: the evaluations run on the event loop's own thread.
    script = Script(tmp_path, executor="thread", num_workers=1)
    scripts.append(script)

    script.wait_until_in_flight()
    script.process.send_signal(signal.SIGINT)
    exit_code = script.wait_for_exit()

    _check_interrupted_script(script, exit_code)
    assert len(_journal_lines(script.run_path)) == script.output()["finished"]
    assert (script.run_path / "tuner_report.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_ctrl_c_stops_tune_in_running_loop(
    executor: str, tmp_path: Path, scripts: list[Script]
) -> None:
    script = Script(tmp_path, executor=executor, in_running_loop=True)
    scripts.append(script)

    script.wait_until_in_flight()
    script.process.send_signal(signal.SIGINT)
    exit_code = script.wait_for_exit()

    _check_interrupted_script(script, exit_code)
    assert len(_journal_lines(script.run_path)) == script.output()["finished"]
    assert (script.run_path / "tuner_report.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("in_running_loop", [False, True], ids=["script", "running-loop"])
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_ctrl_c_twice_during_cleanup(
    executor: str, in_running_loop: bool, tmp_path: Path, scripts: list[Script]
) -> None:
    script = Script(tmp_path, executor=executor, slow_cleanup=True, in_running_loop=in_running_loop)
    scripts.append(script)

    script.wait_until_in_flight()
    script.process.send_signal(signal.SIGINT)
    script.wait_for_file("cleanup-started")
    script.process.send_signal(signal.SIGINT)
    exit_code = script.wait_for_exit()

    _check_interrupted_script(script, exit_code)


@pytest.mark.slow
def test_sigkill_workers_exit(tmp_path: Path, scripts: list[Script]) -> None:
    script = Script(tmp_path, executor="process")
    scripts.append(script)

    script.wait_until_in_flight()
    script.process.send_signal(signal.SIGKILL)
    script.process.wait()
    worker_pids = script.worker_pids()
    # Every line but the last ends with a newline; the last is empty unless the kill tore it.
    complete = (script.run_path / "trials.jsonl").read_bytes().split(b"\n")[:-1]
    records, valid_length = read_trials(script.run_path / "trials.jsonl")

    assert len(worker_pids) == NUM_WORKERS
    assert _wait_until(lambda: not any(_is_running(pid) for pid in worker_pids), ORPHAN_DEADLINE_S)
    for line in complete:
        assert isinstance(json.loads(line), dict)
    assert records == [json.loads(line) for line in complete]
    assert valid_length == sum(len(line) + 1 for line in complete)


# Running from synchronous code


def test_request_before_bind_cancels_at_bind() -> None:
    # Ctrl-C can come while the run is still starting, before it has bound its cancel function.
    interrupts = Interrupts()
    cancels: list[str] = []

    interrupts.request()
    interrupts.bind(lambda: cancels.append("cancel"))

    assert interrupts.requested
    assert cancels == ["cancel"]


@pytest.mark.anyio
async def test_tune_where_loop_runs() -> None:
    # A synchronous tune() where an event loop (asyncio or trio) already runs in the thread
    # needs a loop of its own in another thread.
    expected = [float(i) for i in range(QUICK)]
    tuner = GridTuner(
        {"i": list(range(QUICK))},
        lambda config: float(config["i"]),
        budget=QUICK,
        show_loading=False,
    )

    result = tuner.tune()

    assert result.score_history == expected
