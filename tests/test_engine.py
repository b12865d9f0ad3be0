"""Tests of the engine: trial records, budget, scoring, failures, concurrency and cleanup."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import psutil
import pytest

from async_tuner import GridTuner, RandomTuner, Scope, TrialStatus, Tuner, TuneResult

# Generous bounds for events that the code under test makes happen at once. They only stop a
# broken run from hanging, so a slow machine does not fail the tests.
BARRIER_TIMEOUT_S = 10.0
SCRIPT_TIMEOUT_S = 30.0
THREAD_EXIT_WAIT_S = 2.0
POLL_INTERVAL_S = 0.005
# Seconds each evaluation keeps its worker busy, so that one evaluation too many would overlap.
HOLD_S = 0.05
# Seconds the "slow" configurations sleep, to scramble the completion order.
SLOW_S = 0.03

SPACE = {"x": {"range": (0.0, 1.0)}, "kind": ["a", "b", "c"]}
SPACE_WITH_LISTS = {"layers": [[8], [16, 16]], "x": {"range": (0.0, 1.0)}}
INTEGERS = {"x": {"range": (1, 9), "type": int}}  # GridTuner with budget 9 evaluates 1..9
DIRECTIONS = [pytest.param(True, id="maximize"), pytest.param(False, id="minimize")]
WORKER_COUNTS = [pytest.param(count, id=f"{count}-workers") for count in (1, 3, 8)]
BUDGETS = [pytest.param(budget, id=f"budget-{budget}") for budget in (5, 10)]


def _score_x(config: dict[str, Any]) -> float:
    return float(config["x"])


async def _score_x_async(config: dict[str, Any]) -> float:
    await anyio.lowlevel.checkpoint()
    return float(config["x"])


def _fail_on_kind_b(config: dict[str, Any]) -> float:
    if config["kind"] == "b":
        raise ValueError("kind b is not supported")
    return float(config["x"])


async def _fail_on_kind_b_async(config: dict[str, Any]) -> float:
    await anyio.lowlevel.checkpoint()
    return _fail_on_kind_b(config)


def _random(eval_fn: Callable[..., Any], budget: int, **kwargs: Any) -> RandomTuner:
    kwargs.setdefault("show_loading", False)
    return RandomTuner(SPACE, eval_fn, budget=budget, **kwargs)


def _seeded_configs(budget: int, seed: int, space: dict[str, Any] = SPACE) -> list[dict[str, Any]]:
    return RandomTuner.generate_configs(space, budget, seed=seed)


class CallCounter:
    """A thread-safe eval_fn that counts its calls and returns config["x"]."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, config: dict[str, Any]) -> float:
        with self._lock:
            self.calls += 1
        return float(config["x"])


class AsyncCallCounter:
    """An async eval_fn that counts its calls and returns config["x"]."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, config: dict[str, Any]) -> float:
        self.calls += 1
        await anyio.lowlevel.checkpoint()
        return float(config["x"])


class BreaksAfterBatch(Tuner):
    """A strategy that evaluates one batch and then raises."""

    async def tune_impl(self, scope: Scope, *, batch: int = 4) -> None:
        await scope.evaluate_many(scope.space.sample(scope.rng) for _ in range(batch))
        raise StrategyBrokeError("the strategy broke after its first batch")


class StrategyBrokeError(RuntimeError):
    """Raised by BreaksAfterBatch."""


def _contains(error: BaseException, expected: type[BaseException]) -> bool:
    """Whether ``error`` is ``expected`` or an exception group that contains one."""
    if isinstance(error, expected):
        return True
    return any(_contains(inner, expected) for inner in getattr(error, "exceptions", ()))


# Trial records


def test_trials_in_submission_order() -> None:
    expected = _seeded_configs(8, seed=21)

    tuner = _random(_fail_on_kind_b, 8, num_workers=3)
    tuner.tune(seed=21)

    assert [trial.config for trial in tuner.trials] == expected
    assert [trial.trial_id for trial in tuner.trials] == sorted(
        trial.trial_id for trial in tuner.trials
    )


def test_trials_record_outcome_fields() -> None:
    expected = _seeded_configs(8, seed=22)

    tuner = _random(_fail_on_kind_b, 8, num_workers=3)
    tuner.tune(seed=22)

    for trial, config in zip(tuner.trials, expected, strict=True):
        if config["kind"] == "b":
            assert trial.status == "failed"
            assert trial.score is None
            assert trial.error == "ValueError: kind b is not supported"
        else:
            assert trial.status == "ok"
            assert trial.score == config["x"]
            assert trial.error is None
        assert isinstance(trial.duration, float)
        assert trial.duration >= 0


def test_trial_status_is_enum_equal_to_word() -> None:
    tuner = _random(_score_x, 2)
    tuner.tune(seed=1)

    assert tuner.trials[0].status is TrialStatus.OK
    assert tuner.trials[0].status == "ok"


# Budget


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("num_workers", WORKER_COUNTS)
def test_budget_exact_calls_thread(budget: int, num_workers: int) -> None:
    counter = CallCounter()

    result = _random(counter, budget, num_workers=num_workers).tune(seed=2)

    assert counter.calls == budget
    assert result.total_cost == counter.calls


@pytest.mark.anyio
@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("num_workers", WORKER_COUNTS)
async def test_budget_exact_calls_thread_async_api(budget: int, num_workers: int) -> None:
    counter = CallCounter()

    result = await _random(counter, budget, num_workers=num_workers).tune_async(seed=2)

    assert counter.calls == budget
    assert result.total_cost == counter.calls


@pytest.mark.anyio
@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("num_workers", WORKER_COUNTS)
async def test_budget_exact_calls_async_eval(budget: int, num_workers: int) -> None:
    counter = AsyncCallCounter()

    result = await _random(counter, budget, num_workers=num_workers).tune_async(seed=2)

    assert counter.calls == budget
    assert result.total_cost == counter.calls


@pytest.mark.parametrize("num_workers", WORKER_COUNTS)
def test_budget_counts_failed_trials(num_workers: int) -> None:
    calls: list[dict[str, Any]] = []

    def always_fails(config: dict[str, Any]) -> float:
        calls.append(config)
        raise RuntimeError("no score today")

    result = _random(always_fails, 7, num_workers=num_workers).tune(seed=3)

    assert len(calls) == 7
    assert result.total_cost == 7


# Scores and the best trial


@pytest.mark.parametrize("maximize", DIRECTIONS)
def test_best_follows_direction(maximize: bool) -> None:
    scores = {x: float((x - 4) ** 2) for x in range(1, 10)}
    pick = max if maximize else min
    best_x = pick(scores, key=lambda x: scores[x])

    result = GridTuner(
        INTEGERS, lambda c: scores[c["x"]], maximize=maximize, budget=9, show_loading=False
    ).tune()

    assert result.best_score == scores[best_x]
    assert result.best_config == {"x": best_x}
    assert result.score_history == [scores[x] for x in range(1, 10)]


@pytest.mark.parametrize("maximize", DIRECTIONS)
@pytest.mark.parametrize(
    "non_finite",
    [
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param(-math.inf, id="minus-inf"),
    ],
)
def test_best_ignores_non_finite_scores(maximize: bool, non_finite: float) -> None:
    # x = 1 and x = 9 would be the best in either direction; they score non_finite instead.
    scores = {x: (non_finite if x in (1, 9) else float(x)) for x in range(1, 10)}
    best_x = 8 if maximize else 2

    result = GridTuner(
        INTEGERS, lambda c: scores[c["x"]], maximize=maximize, budget=9, show_loading=False
    ).tune()

    assert result.best_score == float(best_x)
    assert result.best_config == {"x": best_x}
    assert result.score_history == pytest.approx([scores[x] for x in range(1, 10)], nan_ok=True)


def test_best_none_when_all_scores_nan() -> None:
    result = _random(lambda c: math.nan, 4).tune(seed=1)

    assert result.best_score is None
    assert result.best_config is None
    assert len(result.score_history) == 4


@pytest.mark.parametrize("num_workers", [pytest.param(1, id="inline"), pytest.param(3, id="pool")])
def test_best_none_when_all_trials_fail(num_workers: int) -> None:
    def always_fails(config: dict[str, Any]) -> float:
        raise ValueError("broken")

    result = _random(always_fails, 5, num_workers=num_workers).tune(seed=1)

    assert result.best_score is None
    assert result.best_config is None
    assert result.score_history == []
    assert result.execution_times == []


class ReverseFinisher:
    """An async eval_fn whose calls finish in reverse order of submission.

    Every call but the last waits until the call submitted after it has finished, so all calls
    must be in flight at once.
    """

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores
        self.finished: list[int] = []
        self._done = [anyio.Event() for _ in scores]

    async def __call__(self, config: dict[str, Any]) -> float:
        index = config["k"]
        if index + 1 < len(self._done):
            with anyio.fail_after(BARRIER_TIMEOUT_S):
                await self._done[index + 1].wait()
        self.finished.append(index)
        self._done[index].set()
        return self.scores[index]


@pytest.mark.anyio
@pytest.mark.parametrize("maximize", DIRECTIONS)
async def test_best_tie_keeps_earliest_submitted(maximize: bool) -> None:
    sign = 1.0 if maximize else -1.0
    # Trials 1 and 3 tie for the best score; trial 3 finishes first.
    scores = [sign * 0.5, sign * 1.0, sign * 0.2, sign * 1.0]
    evaluate = ReverseFinisher(scores)
    space = {"k": list(range(len(scores)))}

    tuner = GridTuner(
        space, evaluate, maximize=maximize, budget=4, num_workers=4, show_loading=False
    )
    result = await tuner.tune_async()

    assert evaluate.finished == [3, 2, 1, 0]
    assert result.best_config == {"k": 1}
    assert result.best_score == sign * 1.0


def test_score_fn_extracts_score() -> None:
    expected = _seeded_configs(6, seed=5)

    tuner = _random(
        lambda c: {"accuracy": c["x"], "loss": 1.0 - c["x"]},
        6,
        score_fn=lambda output: output["accuracy"],
        score_log_fn=lambda output: output["loss"],
    )
    result = tuner.tune(seed=5)

    assert result.score_history == [config["x"] for config in expected]
    assert [trial.logged for trial in tuner.trials] == [1.0 - config["x"] for config in expected]


def test_score_log_fn_defaults_to_output() -> None:
    tuner = _random(_score_x, 3)
    result = tuner.tune(seed=6)

    assert [trial.logged for trial in tuner.trials] == result.score_history


def test_score_fn_error_fails_trial() -> None:
    tuner = _random(lambda c: {"loss": c["x"]}, 3, score_fn=lambda output: output["accuracy"])
    result = tuner.tune(seed=7)

    assert result.score_history == []
    for trial in tuner.trials:
        assert trial.status == "failed"
        assert "score_fn" in (trial.error or "")
        assert "KeyError" in (trial.error or "")


# Failed evaluations

EXECUTION_PATHS = [
    pytest.param(1, "thread", id="inline"),
    pytest.param(4, "thread", id="thread-pool"),
    pytest.param(2, "process", id="process"),
]


@pytest.mark.parametrize(("num_workers", "executor"), EXECUTION_PATHS)
def test_exception_fails_only_that_trial(num_workers: int, executor: str) -> None:
    expected = _seeded_configs(9, seed=8)

    tuner = _random(_fail_on_kind_b, 9, num_workers=num_workers, executor=executor)
    result = tuner.tune(seed=8)

    assert [trial.status == "failed" for trial in tuner.trials] == [
        config["kind"] == "b" for config in expected
    ]
    assert result.score_history == [config["x"] for config in expected if config["kind"] != "b"]
    assert result.total_cost == 9


@pytest.mark.parametrize(("num_workers", "executor"), EXECUTION_PATHS)
def test_exception_text_recorded(num_workers: int, executor: str) -> None:
    tuner = _random(_fail_on_kind_b, 9, num_workers=num_workers, executor=executor)
    tuner.tune(seed=8)

    failed = [trial for trial in tuner.trials if trial.config["kind"] == "b"]
    assert failed
    for trial in failed:
        assert trial.error == "ValueError: kind b is not supported"


@pytest.mark.anyio
async def test_exception_fails_only_that_trial_async() -> None:
    expected = _seeded_configs(9, seed=8)

    tuner = _random(_fail_on_kind_b_async, 9, num_workers=4)
    result = await tuner.tune_async(seed=8)

    assert [trial.error for trial in tuner.trials] == [
        "ValueError: kind b is not supported" if config["kind"] == "b" else None
        for config in expected
    ]
    assert result.score_history == [config["x"] for config in expected if config["kind"] != "b"]


def test_exception_in_first_batch_keeps_batch() -> None:
    # The first num_workers trials run together; one of them raising must not lose the others.
    space = {"k": [0, 1, 2, 3]}

    def second_fails(config: dict[str, Any]) -> float:
        if config["k"] == 1:
            raise ValueError("k = 1 fails")
        return float(config["k"])

    tuner = GridTuner(space, second_fails, budget=4, num_workers=4, show_loading=False)
    result = tuner.tune()

    assert result.score_history == [0.0, 2.0, 3.0]
    assert [trial.status.value for trial in tuner.trials] == ["ok", "failed", "ok", "ok"]


@pytest.mark.parametrize(
    "output",
    [
        pytest.param(None, id="none"),
        pytest.param("abc", id="str"),
        pytest.param({"score": 1.0}, id="dict"),
        pytest.param([1.0], id="list"),
        pytest.param(1j, id="complex"),
    ],
)
def test_non_real_score_fails_trial(output: Any) -> None:
    tuner = _random(lambda c: output, 3)
    result = tuner.tune(seed=9)

    assert result.score_history == []
    assert result.total_cost == 3
    for trial in tuner.trials:
        assert trial.status == "failed"
        assert repr(output) in (trial.error or "")
        assert "score_fn" in (trial.error or "")


# Submission order of the history


def _jittered(config: dict[str, Any]) -> float:
    time.sleep(SLOW_S if config["kind"] == "b" else 0.0)
    return float(config["x"])


async def _jittered_async(config: dict[str, Any]) -> float:
    await anyio.sleep(SLOW_S if config["kind"] == "b" else 0.0)
    return float(config["x"])


def _check_submission_order(result: TuneResult, expected: list[dict[str, Any]]) -> None:
    assert result.score_history == [config["x"] for config in expected]
    for duration, config in zip(result.execution_times, expected, strict=True):
        if config["kind"] == "b":
            assert duration >= SLOW_S


@pytest.mark.parametrize("num_workers", [pytest.param(1, id="1-worker"), pytest.param(8, id="8")])
def test_history_submission_order_thread(num_workers: int) -> None:
    expected = _seeded_configs(16, seed=10)

    result = _random(_jittered, 16, num_workers=num_workers).tune(seed=10)

    _check_submission_order(result, expected)


@pytest.mark.anyio
@pytest.mark.parametrize("num_workers", [pytest.param(1, id="1-worker"), pytest.param(8, id="8")])
async def test_history_submission_order_async(num_workers: int) -> None:
    expected = _seeded_configs(16, seed=10)

    result = await _random(_jittered_async, 16, num_workers=num_workers).tune_async(seed=10)

    _check_submission_order(result, expected)


@pytest.mark.anyio
async def test_history_same_for_1_and_8_workers() -> None:
    one = await _random(_jittered_async, 16, num_workers=1).tune_async(seed=12)
    eight = await _random(_jittered_async, 16, num_workers=8).tune_async(seed=12)

    assert eight.score_history == one.score_history
    assert eight.best_config == one.best_config
    assert eight.best_score == one.best_score


# Copies of configurations


def _mutate(config: dict[str, Any]) -> float:
    score = float(config["x"])
    config["x"] = -1.0
    config["extra"] = True
    if "layers" in config:
        config["layers"].append(99)
    return score


async def _mutate_async(config: dict[str, Any]) -> float:
    await anyio.lowlevel.checkpoint()
    return _mutate(config)


SPACES = [
    pytest.param(SPACE, id="plain-values"),
    pytest.param(SPACE_WITH_LISTS, id="list-choices"),
]


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("num_workers", [pytest.param(1, id="inline"), pytest.param(3, id="pool")])
def test_eval_fn_mutation_not_recorded(space: dict[str, Any], num_workers: int) -> None:
    space_before = copy.deepcopy(space)
    expected = copy.deepcopy(_seeded_configs(6, seed=13, space=space))

    tuner = RandomTuner(space, _mutate, budget=6, num_workers=num_workers, show_loading=False)
    result = tuner.tune(seed=13)

    assert [trial.config for trial in tuner.trials] == expected
    assert result.score_history == [config["x"] for config in expected]
    assert space == space_before


@pytest.mark.anyio
@pytest.mark.parametrize("space", SPACES)
async def test_eval_fn_mutation_not_recorded_async(space: dict[str, Any]) -> None:
    space_before = copy.deepcopy(space)
    expected = copy.deepcopy(_seeded_configs(6, seed=13, space=space))

    tuner = RandomTuner(space, _mutate_async, budget=6, num_workers=3, show_loading=False)
    await tuner.tune_async(seed=13)

    assert [trial.config for trial in tuner.trials] == expected
    assert space == space_before


def test_start_config_mutation_after_construction_ignored() -> None:
    start_config = {"layers": [16, 16], "x": 0.25}
    tuner = RandomTuner(
        SPACE_WITH_LISTS, _score_x, budget=3, start_config=start_config, show_loading=False
    )
    start_config["x"] = 0.75
    start_config["layers"].append(32)

    result = tuner.tune(seed=14)

    assert tuner.trials[0].config == {"layers": [16, 16], "x": 0.25}
    assert result.score_history[0] == 0.25


@pytest.mark.parametrize("space", SPACES)
def test_best_config_is_copy(space: dict[str, Any]) -> None:
    tuner = RandomTuner(space, _score_x, budget=5, show_loading=False)
    result = tuner.tune(seed=15)
    recorded = copy.deepcopy([trial.config for trial in tuner.trials])
    assert result.best_config is not None

    result.best_config["x"] = 123.0
    if "layers" in result.best_config:
        result.best_config["layers"].append(7)

    assert [trial.config for trial in tuner.trials] == recorded


# Bounded concurrency


class ThreadInFlight:
    """A thread eval_fn that records the peak number of calls in flight.

    The first ``parties`` calls wait for each other, so the peak reaches ``parties`` if the
    engine allows it. Every call then keeps its worker busy for HOLD_S, so that a call beyond
    the limit would overlap and raise the peak.
    """

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.peak = 0
        self._calls = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(parties, timeout=BARRIER_TIMEOUT_S)

    def __call__(self, config: dict[str, Any]) -> float:
        with self._lock:
            self._calls += 1
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
            first_wave = self._calls <= self.parties
        try:
            if first_wave:
                self._barrier.wait()
            time.sleep(HOLD_S)
        finally:
            with self._lock:
                self._in_flight -= 1
        return float(config["x"])


class AsyncInFlight:
    """The async counterpart of ThreadInFlight."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.peak = 0
        self._calls = 0
        self._in_flight = 0
        self._all_arrived = anyio.Event()

    async def __call__(self, config: dict[str, Any]) -> float:
        self._calls += 1
        self._in_flight += 1
        self.peak = max(self.peak, self._in_flight)
        try:
            if self._calls == self.parties:
                self._all_arrived.set()
            if self._calls <= self.parties:
                with anyio.fail_after(BARRIER_TIMEOUT_S):
                    await self._all_arrived.wait()
            await anyio.sleep(HOLD_S)
        finally:
            self._in_flight -= 1
        return float(config["x"])


PARALLEL_WORKERS = [pytest.param(count, id=f"{count}-workers") for count in (2, 4)]


class EvaluateFromManyTasks(Tuner):
    """A strategy that calls ``scope.evaluate`` from one task per trial, all at once.

    Unlike ``evaluate_many``, this leaves the engine's worker slots as the only bound on
    concurrency.
    """

    async def tune_impl(self, scope: Scope, *, count: int) -> None:
        async with anyio.create_task_group() as group:
            for _ in range(count):
                group.start_soon(scope.evaluate, scope.space.sample(scope.rng))


STRATEGIES = [
    pytest.param(RandomTuner, id="evaluate_many"),
    pytest.param(EvaluateFromManyTasks, id="evaluate-per-task"),
]


def _strategy_options(strategy: type[Tuner], budget: int) -> dict[str, Any]:
    return {"count": budget} if strategy is EvaluateFromManyTasks else {"seed": 16}


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("num_workers", PARALLEL_WORKERS)
def test_concurrency_peak_thread(strategy: type[Tuner], num_workers: int) -> None:
    probe = ThreadInFlight(num_workers)
    budget = 3 * num_workers

    tuner = strategy(SPACE, probe, budget=budget, num_workers=num_workers, show_loading=False)
    tuner.tune(**_strategy_options(strategy, budget))

    assert probe.peak == num_workers


@pytest.mark.anyio
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("num_workers", PARALLEL_WORKERS)
async def test_concurrency_peak_async(strategy: type[Tuner], num_workers: int) -> None:
    probe = AsyncInFlight(num_workers)
    budget = 3 * num_workers

    tuner = strategy(SPACE, probe, budget=budget, num_workers=num_workers, show_loading=False)
    await tuner.tune_async(**_strategy_options(strategy, budget))

    assert probe.peak == num_workers


def _process_in_flight_probe(directory: str, parties: int) -> Callable[[dict[str, Any]], float]:
    """Return a process eval_fn that scores each call with the calls in flight that it saw.

    Each call takes a unique ticket, marks itself running with a file, and the first
    ``parties`` tickets wait until all of them are running. Every call keeps its worker
    busy for HOLD_S and counts the running files before it clears its own.
    """
    barrier_timeout_s = BARRIER_TIMEOUT_S
    hold_s = HOLD_S
    poll_interval_s = POLL_INTERVAL_S

    def evaluate(config: dict[str, Any]) -> float:
        running = os.path.join(directory, "running")
        arrived = os.path.join(directory, "arrived")
        ticket = 0
        while True:
            try:
                os.close(
                    os.open(os.path.join(directory, f"ticket-{ticket}"), os.O_CREAT | os.O_EXCL)
                )
                break
            except FileExistsError:
                ticket += 1
        marker = os.path.join(running, str(ticket))
        open(marker, "w").close()
        open(os.path.join(arrived, str(ticket)), "w").close()
        try:
            seen = len(os.listdir(running))
            if ticket < parties:
                deadline = time.monotonic() + barrier_timeout_s
                while len([name for name in os.listdir(arrived) if int(name) < parties]) < parties:
                    if time.monotonic() > deadline:
                        raise TimeoutError("the first calls never ran at the same time")
                    time.sleep(poll_interval_s)
                seen = max(seen, len(os.listdir(running)))
            time.sleep(hold_s)
            seen = max(seen, len(os.listdir(running)))
        finally:
            os.remove(marker)
        return float(seen)

    return evaluate


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_concurrency_peak_process(tmp_path: Path, strategy: type[Tuner]) -> None:
    num_workers = 2
    budget = 3 * num_workers
    (tmp_path / "running").mkdir()
    (tmp_path / "arrived").mkdir()
    probe = _process_in_flight_probe(str(tmp_path), num_workers)

    tuner = strategy(
        SPACE,
        probe,
        budget=budget,
        num_workers=num_workers,
        executor="process",
        show_loading=False,
    )
    result = tuner.tune(**_strategy_options(strategy, budget))

    assert [trial.error for trial in tuner.trials] == [None] * (3 * num_workers)
    assert max(result.score_history) == num_workers


# Process workers


def test_process_lambda_eval_fn() -> None:
    expected = _seeded_configs(4, seed=18)

    result = _random(lambda c: 2.0 * c["x"], 4, num_workers=2, executor="process").tune(seed=18)

    assert result.score_history == [2.0 * config["x"] for config in expected]


def test_process_closure_eval_fn() -> None:
    weights = {"a": 1.5, "b": -2.0, "c": 0.25}
    expected = _seeded_configs(4, seed=19)

    def weighted(config: dict[str, Any]) -> float:
        return weights[config["kind"]] * config["x"]

    result = _random(weighted, 4, num_workers=2, executor="process").tune(seed=19)

    assert result.score_history == [weights[c["kind"]] * c["x"] for c in expected]


@pytest.mark.slow
def test_process_eval_fn_defined_in_main(tmp_path: Path) -> None:
    offset = 3.0
    budget = 3
    # GridTuner with budget 3 on (0, 4) evaluates x = 4 * k / 4 for k = 1..3.
    expected = [4.0 * k / (budget + 1) + offset for k in range(1, budget + 1)]
    script = tmp_path / "tune_script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json

            from async_tuner import GridTuner

            OFFSET = {offset!r}


            def evaluate(config):
                return config["x"] + OFFSET


            tuner = GridTuner(
                {{"x": {{"range": (0.0, 4.0)}}}},
                evaluate,
                budget={budget},
                num_workers=2,
                executor="process",
                show_loading=False,
            )
            result = tuner.tune()
            print(json.dumps({{"history": result.score_history,
                               "errors": [trial.error for trial in tuner.trials]}}))
            """
        )
    )

    completed = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
        cwd=tmp_path,
    )
    output = json.loads(completed.stdout)

    assert completed.returncode == 0
    assert output["errors"] == [None] * budget
    assert output["history"] == pytest.approx(expected)


# A caller's executor


def test_user_executor_used_and_left_open() -> None:
    names: list[str] = []

    def record_thread(config: dict[str, Any]) -> float:
        names.append(threading.current_thread().name)
        return float(config["x"])

    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="user-pool") as pool:
        result = _random(record_thread, 6, num_workers=2, executor=pool).tune(seed=20)
        still_open = pool.submit(int, "7").result(timeout=BARRIER_TIMEOUT_S)

    assert len(names) == 6
    assert all(name.startswith("user-pool") for name in names)
    assert result.total_cost == 6
    assert still_open == 7


# Cleanup


def _threads_left(before: set[threading.Thread]) -> list[threading.Thread]:
    """Return the threads started since ``before`` that are still alive after a short wait."""
    deadline = time.monotonic() + THREAD_EXIT_WAIT_S
    for thread in threading.enumerate():
        if thread not in before:
            thread.join(max(0.0, deadline - time.monotonic()))
    return [thread for thread in threading.enumerate() if thread not in before]


def _child_pids() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


CLEANUP_CASES = [
    pytest.param(1, "thread", id="inline"),
    pytest.param(3, "thread", id="thread"),
    pytest.param(2, "process", id="process"),
]


@pytest.mark.parametrize(("num_workers", "executor"), CLEANUP_CASES)
def test_cleanup_after_return(num_workers: int, executor: str) -> None:
    threads_before = set(threading.enumerate())
    children_before = _child_pids()

    _random(_score_x, 6, num_workers=num_workers, executor=executor).tune(seed=23)

    assert _child_pids() - children_before == set()
    assert _threads_left(threads_before) == []


def test_cleanup_after_return_inside_loop() -> None:
    threads_before = set(threading.enumerate())

    async def notebook_cell() -> TuneResult:
        return _random(_score_x, 4, num_workers=2).tune(seed=23)

    result = asyncio.run(notebook_cell())

    assert result.total_cost == 4
    assert _threads_left(threads_before) == []


def _tune_expecting_error(tuner: Tuner) -> BaseException:
    try:
        tuner.tune()
    except Exception as exc:  # the strategy's error, bare or in an exception group
        return exc
    pytest.fail("tune() returned although the strategy raised")


@pytest.mark.parametrize(("num_workers", "executor"), CLEANUP_CASES)
def test_cleanup_after_strategy_error(num_workers: int, executor: str) -> None:
    threads_before = set(threading.enumerate())
    children_before = _child_pids()
    tuner = BreaksAfterBatch(
        SPACE, _score_x, budget=10, num_workers=num_workers, executor=executor, show_loading=False
    )

    error = _tune_expecting_error(tuner)

    assert _contains(error, StrategyBrokeError)
    assert _child_pids() - children_before == set()
    assert _threads_left(threads_before) == []


@pytest.mark.parametrize("num_workers", [pytest.param(1, id="inline"), pytest.param(3, id="pool")])
def test_strategy_error_raised_unwrapped(num_workers: int) -> None:
    tuner = BreaksAfterBatch(
        SPACE, _score_x, budget=10, num_workers=num_workers, show_loading=False
    )

    with pytest.raises(StrategyBrokeError, match="first batch"):
        tuner.tune()


def test_strategy_error_keeps_finished_trials() -> None:
    tuner = BreaksAfterBatch(SPACE, _score_x, budget=10, num_workers=2, show_loading=False)

    _tune_expecting_error(tuner)

    assert len(tuner.trials) == 4
    assert all(trial.status == "ok" for trial in tuner.trials)


# Inline and pool paths agree


def _record_main_thread(calls: list[bool]) -> Callable[[dict[str, Any]], float]:
    def evaluate(config: dict[str, Any]) -> float:
        calls.append(threading.current_thread() is threading.main_thread())
        return float(config["x"]) * (2.0 if config["kind"] == "a" else 1.0)

    return evaluate


def _signature(tuner: Tuner, result: TuneResult) -> tuple[Any, ...]:
    configs = [trial.config for trial in tuner.trials]
    return (configs, result.score_history, result.best_score, result.best_config)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_inline_path_matches_pool_path(backend: str) -> None:
    inline_calls: list[bool] = []
    inline_tuner = _random(_record_main_thread(inline_calls), 8)
    inline = _signature(inline_tuner, inline_tuner.tune(seed=24))

    async_api_calls: list[bool] = []
    async_api_tuner = _random(_record_main_thread(async_api_calls), 8)
    async_api_result = anyio.run(lambda: async_api_tuner.tune_async(seed=24), backend=backend)
    async_api = _signature(async_api_tuner, async_api_result)

    pool_tuner = _random(_record_main_thread([]), 8, num_workers=2)
    pool = _signature(pool_tuner, pool_tuner.tune(seed=24))

    assert all(inline_calls)
    assert not any(async_api_calls)
    assert async_api == inline
    assert pool == inline
