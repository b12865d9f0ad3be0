"""Tests of trial_timeout and time_budget on async, thread and process evaluations.

Most tests run a grid over one discrete parameter, so trial ``i`` evaluates ``{"i": i}`` and the
expected outcome of every trial follows from ``i`` alone.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from trio.testing import MockClock

from async_tuner import GridTuner, RandomTuner, TrialStatus

CONFIG_COUNT = 6
SPACE = {"i": list(range(CONFIG_COUNT))}
HUNG = frozenset({1, 3})  # configs whose evaluation hangs until it is timed out

TRIAL_TIMEOUT_S = 0.5
HANG_S = 60.0  # far longer than any timeout here, so a hung evaluation is always cut off first
EXIT_DEADLINE_S = 5.0  # generous bound for a killed worker process to disappear
POLL_INTERVAL_S = 0.02

EXECUTORS = ["async", "thread", "process"]


def _score(i: int) -> float:
    return float(i * i)


def _expected_status(i: int) -> TrialStatus:
    return TrialStatus.TIMED_OUT if i in HUNG else TrialStatus.OK


def _wait_until(condition: Callable[[], bool], deadline_s: float) -> bool:
    """Poll ``condition`` until it is true or ``deadline_s`` has passed, and return its value."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        time.sleep(POLL_INTERVAL_S)
    return True


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Yield the event that hung thread evaluations wait on, and set it at teardown."""
    event = threading.Event()
    yield event
    event.set()


def _async_eval(cancelled: list[int]) -> Callable[[dict[str, Any]], Any]:
    async def evaluate(config: dict[str, Any]) -> float:
        if config["i"] in HUNG:
            try:
                await anyio.sleep(HANG_S)
            except anyio.get_cancelled_exc_class():
                cancelled.append(config["i"])
                raise
        return _score(config["i"])

    return evaluate


def _thread_eval(release: threading.Event) -> Callable[[dict[str, Any]], float]:
    def evaluate(config: dict[str, Any]) -> float:
        if config["i"] in HUNG:
            release.wait(HANG_S)
        return _score(config["i"])

    return evaluate


def _process_eval(pid_file: Path) -> Callable[[dict[str, Any]], float]:
    # Defined inside a function, so cloudpickle sends it by value and the worker does not
    # import this test module.
    def evaluate(config: dict[str, Any]) -> float:
        with open(pid_file, "a", encoding="utf-8") as file:
            file.write(f"{config['i']} {os.getpid()}\n")
        if config["i"] in HUNG:
            time.sleep(HANG_S)
        return float(config["i"] * config["i"])

    return evaluate


def _pids_by_config(pid_file: Path) -> dict[int, int]:
    pairs = (line.split() for line in pid_file.read_text(encoding="utf-8").splitlines())
    return {int(config): int(pid) for config, pid in pairs}


def _grid_tuner(eval_fn: Callable[..., Any], executor: str, **kwargs: Any) -> GridTuner:
    kwargs.setdefault("num_workers", 2)
    kwargs.setdefault("trial_timeout", TRIAL_TIMEOUT_S)
    return GridTuner(
        SPACE,
        eval_fn,
        budget=CONFIG_COUNT,
        show_loading=False,
        executor="thread" if executor == "async" else executor,
        **kwargs,
    )


def _make_tuner(executor: str, tmp_path: Path, release: threading.Event) -> GridTuner:
    if executor == "async":
        return _grid_tuner(_async_eval([]), executor)
    if executor == "thread":
        return _grid_tuner(_thread_eval(release), executor)
    return _grid_tuner(_process_eval(tmp_path / "pids.txt"), executor)


# Every kind of worker


@pytest.mark.anyio
@pytest.mark.parametrize("executor", EXECUTORS)
async def test_timeout_recorded_and_run_goes_on(
    executor: str, tmp_path: Path, release: threading.Event
) -> None:
    expected_status = [_expected_status(i) for i in range(CONFIG_COUNT)]
    expected_cost = CONFIG_COUNT
    finished = [i for i in range(CONFIG_COUNT) if i not in HUNG]
    expected_history = [_score(i) for i in finished]
    expected_best = max(expected_history)
    tuner = _make_tuner(executor, tmp_path, release)

    result = await tuner.tune_async()
    errors = [trial.error for trial in tuner.trials if trial.status is TrialStatus.TIMED_OUT]

    assert [trial.status for trial in tuner.trials] == expected_status
    assert result.total_cost == expected_cost
    assert result.score_history == expected_history
    assert result.best_score == expected_best
    assert result.best_config == {"i": finished[-1]}
    for error in errors:
        assert error is not None
        assert "timed out" in error
        assert str(TRIAL_TIMEOUT_S) in error


# Async evaluations


@pytest.mark.anyio
async def test_timeout_async_evaluation_cancelled() -> None:
    cancelled: list[int] = []
    tuner = _grid_tuner(_async_eval(cancelled), "async")

    await tuner.tune_async()

    assert sorted(cancelled) == sorted(HUNG)


def _run_on_virtual_clock(main: Callable[[], Any]) -> Any:
    """Run ``main`` on trio with a fresh virtual clock that jumps whenever all tasks wait."""
    return anyio.run(
        main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)}
    )


def test_timeout_async_on_virtual_clock() -> None:
    # On a virtual clock a hung evaluation costs no real time, so the timeout can be long. It
    # must still be shorter than the HANG_S sleep of a hung evaluation.
    timeout_s = HANG_S / 2
    expected_status = [_expected_status(i) for i in range(CONFIG_COUNT)]
    expected_elapsed = timeout_s * len(HUNG)
    tuner = _grid_tuner(_async_eval([]), "async", trial_timeout=timeout_s, num_workers=1)

    async def main() -> float:
        start = anyio.current_time()
        await tuner.tune_async()
        return anyio.current_time() - start

    elapsed = _run_on_virtual_clock(main)

    assert [trial.status for trial in tuner.trials] == expected_status
    assert elapsed == expected_elapsed


# Process evaluations


@pytest.mark.anyio
async def test_timeout_process_worker_replaced(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.txt"
    tuner = _grid_tuner(_process_eval(pid_file), "process")

    await tuner.tune_async()
    pids = _pids_by_config(pid_file)
    hung_pids = {pids[i] for i in HUNG}
    after_last_hang = range(max(HUNG) + 1, CONFIG_COUNT)

    assert len(hung_pids) == len(HUNG)
    for pid in hung_pids:
        assert _wait_until(lambda pid=pid: not psutil.pid_exists(pid), EXIT_DEADLINE_S)
    # Trials start in config order, so a worker that ran config j ran nothing after j.
    for j in HUNG:
        assert max(i for i, pid in pids.items() if pid == pids[j]) == j
    for i in after_last_hang:
        assert tuner.trials[i].status is TrialStatus.OK
        assert pids[i] not in hung_pids
    assert _wait_until(lambda: not psutil.Process().children(), EXIT_DEADLINE_S)


SLOW_LOAD_S = 1.0  # time a worker takes to unpickle the eval_fn below, like a heavy import


def _slow_to_load() -> object:
    """Return an object that takes SLOW_LOAD_S to unpickle in a worker."""

    # Local, so that cloudpickle sends the function and the class by value.
    def load() -> str:
        time.sleep(SLOW_LOAD_S)
        return "loaded"

    class SlowToLoad:
        def __reduce__(self) -> tuple[Callable[[], str], tuple[()]]:
            return load, ()

    return SlowToLoad()


def test_timeout_process_excludes_worker_start() -> None:
    # The evaluation itself is instant, and only loading the function takes longer than the
    # timeout.
    heavy = _slow_to_load()
    expected = [TrialStatus.OK] * CONFIG_COUNT

    def evaluate(config: dict[str, Any]) -> float:
        return float(config["i"]) if heavy else 0.0

    tuner = _grid_tuner(evaluate, "process", trial_timeout=SLOW_LOAD_S / 2)
    tuner.tune()

    assert [trial.status for trial in tuner.trials] == expected


# Thread evaluations


def _abandon_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Return the warnings that a timed-out evaluation goes on in a thread.

    The warning of each timed-out trial is left out: it does not mention threads.
    """
    return [
        record
        for record in caplog.records
        if record.levelno == logging.WARNING and "thread" in record.getMessage()
    ]


@pytest.mark.anyio
async def test_timeout_thread_warns_once_per_run(
    caplog: pytest.LogCaptureFixture, release: threading.Event
) -> None:
    caplog.set_level(logging.WARNING, logger="async_tuner")
    tuner = _grid_tuner(_thread_eval(release), "thread")

    await tuner.tune_async()
    first_run = len(_abandon_warnings(caplog))
    await tuner.tune_async()
    both_runs = len(_abandon_warnings(caplog))

    assert first_run == 1
    assert both_runs == 2


@pytest.mark.anyio
async def test_timeout_user_executor_warns_once(
    caplog: pytest.LogCaptureFixture, release: threading.Event
) -> None:
    caplog.set_level(logging.WARNING, logger="async_tuner")
    expected = [_expected_status(i) for i in range(CONFIG_COUNT)]
    with ThreadPoolExecutor(max_workers=CONFIG_COUNT) as executor:
        tuner = GridTuner(
            SPACE,
            _thread_eval(release),
            budget=CONFIG_COUNT,
            num_workers=2,
            trial_timeout=TRIAL_TIMEOUT_S,
            executor=executor,
            show_loading=False,
        )
        await tuner.tune_async()
        release.set()  # ends the hung evaluations, so that the executor can shut down

    assert [trial.status for trial in tuner.trials] == expected
    assert len(_abandon_warnings(caplog)) == 1


# Longer than the barrier wait, so that a missing thread shows up as a broken barrier (a
# failed trial) rather than as a timeout.
POOL_TRIAL_TIMEOUT_S = 1.0
BARRIER_TIMEOUT_S = 0.8


@pytest.mark.anyio
@pytest.mark.parametrize("num_workers", [2, 3])
async def test_timeout_thread_pool_keeps_size(num_workers: int, release: threading.Event) -> None:
    # The first num_workers trials hang and are abandoned. Every later trial waits at a barrier
    # for num_workers parties, which it passes only if num_workers threads still run at once.
    config_count = 4 * num_workers
    hung = set(range(num_workers))
    barrier = threading.Barrier(num_workers, timeout=BARRIER_TIMEOUT_S)
    expected = [TrialStatus.TIMED_OUT if i in hung else TrialStatus.OK for i in range(config_count)]

    def evaluate(config: dict[str, Any]) -> float:
        if config["i"] in hung:
            release.wait(HANG_S)
        else:
            barrier.wait()
        return float(config["i"])

    tuner = GridTuner(
        {"i": list(range(config_count))},
        evaluate,
        budget=config_count,
        num_workers=num_workers,
        trial_timeout=POOL_TRIAL_TIMEOUT_S,
        show_loading=False,
    )
    await tuner.tune_async()

    assert [trial.status for trial in tuner.trials] == expected


# time_budget


@pytest.mark.parametrize("num_workers", [1, 2])
@pytest.mark.parametrize("step_s", [0.25, 0.375])
def test_time_budget_trial_count_virtual_clock(num_workers: int, step_s: float) -> None:
    # Each worker starts a trial at 0, step_s, 2 * step_s, ... while the time is under the
    # budget. A trial that started in time runs to its end, even past the budget.
    time_budget_s = 1.0
    expected_calls = num_workers * math.ceil(time_budget_s / step_s)
    scores: list[float] = []

    async def evaluate(config: dict[str, Any]) -> float:
        await anyio.sleep(step_s)
        scores.append(config["x"])
        return float(config["x"])

    tuner = RandomTuner(
        {"x": {"range": (0.0, 1.0)}},
        evaluate,
        budget=10_000,
        num_workers=num_workers,
        time_budget=time_budget_s,
        show_loading=False,
    )
    result = _run_on_virtual_clock(lambda: tuner.tune_async(seed=7))

    assert len(scores) == expected_calls
    assert result.total_cost == expected_calls
    assert result.best_score == max(scores)
    assert sorted(result.score_history) == sorted(scores)


def _slow_sync(scores: list[float]) -> Callable[[dict[str, Any]], float]:
    lock = threading.Lock()

    def evaluate(config: dict[str, Any]) -> float:
        time.sleep(0.01)
        with lock:
            scores.append(config["x"])
        return float(config["x"])

    return evaluate


def _slow_async(scores: list[float]) -> Callable[[dict[str, Any]], Any]:
    async def evaluate(config: dict[str, Any]) -> float:
        await anyio.sleep(0.01)
        scores.append(config["x"])
        return float(config["x"])

    return evaluate


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("make_eval", "num_workers"),
    [
        pytest.param(_slow_sync, 1, id="thread-1"),
        pytest.param(_slow_sync, 2, id="thread-2"),
        pytest.param(_slow_async, 2, id="async-2"),
    ],
)
async def test_time_budget_returns_best_so_far(
    make_eval: Callable[[list[float]], Callable[..., Any]], num_workers: int
) -> None:
    budget = 100_000  # far more than the time budget allows
    scores: list[float] = []
    tuner = RandomTuner(
        {"x": {"range": (0.0, 1.0)}},
        make_eval(scores),
        budget=budget,
        num_workers=num_workers,
        time_budget=0.2,
        show_loading=False,
    )

    result = await tuner.tune_async(seed=3)

    assert 0 < len(scores) < budget
    assert result.total_cost == len(scores)
    assert result.best_score == max(scores)
    assert result.best_config == {"x": max(scores)}


def test_time_budget_inline_path() -> None:
    # One thread worker without a timeout evaluates on the event loop's own thread.
    budget = 100_000
    scores: list[float] = []
    tuner = RandomTuner(
        {"x": {"range": (0.0, 1.0)}},
        _slow_sync(scores),
        budget=budget,
        time_budget=0.2,
        show_loading=False,
    )

    result = tuner.tune(seed=5)

    assert 0 < len(scores) < budget
    assert result.total_cost == len(scores)
    assert result.best_score == max(scores)
