"""Tests for HyperbandTuner, run through the real engine."""

from __future__ import annotations

import logging
import math
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from async_tuner._space import config_key
from async_tuner._types import Trial
from async_tuner.strategies._hyperband import HyperbandTuner
from async_tuner.strategies._random import RandomTuner
from async_tuner.strategies._schedule import finite_horizon_hyperband_schedule, hyperband_cost
from async_tuner.strategies._successive_halving import SuccessiveHalvingTuner

SPACE = {"x": {"range": (0.0, 1.0)}, "kind": ["a", "b", "c"]}
DELAY_UNITS = {"a": 2, "b": 0, "c": 1}
DIRECTIONS = [pytest.param(True, id="maximize"), pytest.param(False, id="minimize")]


def _score(config: dict[str, Any], resource: int) -> float:
    """A score whose ranking of configs changes with the resource."""
    offset = {"a": 0.0, "b": 0.3, "c": -0.2}[config["kind"]]
    return math.sin(5.0 * config["x"] * math.log(1 + resource)) + offset


def _tuner(eval_fn: Callable[..., Any], **kwargs: Any) -> HyperbandTuner:
    kwargs.setdefault("show_loading", False)
    kwargs.setdefault("budget", 100_000)
    return HyperbandTuner(SPACE, eval_fn, **kwargs)


def _by_bracket_and_rung(trials: list[Trial]) -> dict[int, dict[int, list[Trial]]]:
    grouped: dict[int, dict[int, list[Trial]]] = defaultdict(lambda: defaultdict(list))
    for trial in trials:
        assert trial.bracket is not None
        assert trial.rung is not None
        grouped[trial.bracket][trial.rung].append(trial)
    return grouped


def _score_of(trial: Trial) -> float:
    assert trial.score is not None
    return trial.score


def _best_keys(trials: list[Trial], count: int, maximize: bool) -> list[Any]:
    """Return the config keys of the ``count`` best trials, ties to the earlier (reference)."""
    indexed = list(enumerate(trials))
    indexed.sort(
        key=lambda item: (-_score_of(item[1]) if maximize else _score_of(item[1]), item[0])
    )
    return sorted(config_key(trial.config) for _, trial in indexed[:count])


def test_hyperband_classmethods_match_schedule_math() -> None:
    schedule = HyperbandTuner.finite_horizon_hyperband_schedule(81, 3)

    assert [(b["K"], b["T"], b["N"]) for b in schedule] == [
        (81, 1, 5),
        (27, 3, 4),
        (9, 9, 3),
        (6, 27, 2),
        (5, 81, 1),
    ]
    assert HyperbandTuner.estimate_cost(schedule) == hyperband_cost(schedule)
    assert HyperbandTuner.estimate_cost(schedule) == sum(
        SuccessiveHalvingTuner.estimate_cost(b["eta"], b["N"], b["K"], b["T"]) for b in schedule
    )
    paper = HyperbandTuner.finite_horizon_hyperband_schedule(81, 3, paper_sizes=True)
    assert [b["K"] for b in paper] == [81, 34, 15, 8, 5]


@pytest.mark.parametrize("maximize", DIRECTIONS)
@pytest.mark.parametrize(("max_iter", "eta"), [(27, 3), (8, 2), (30, 3)])
def test_hyperband_rungs_follow_schedule(maximize: bool, max_iter: int, eta: int) -> None:
    calls: list[tuple[dict[str, Any], int]] = []
    lock = threading.Lock()

    def score(config: dict[str, Any], resource: int) -> float:
        with lock:
            calls.append((dict(config), resource))
        return _score(config, resource)

    tuner = _tuner(score, maximize=maximize, num_workers=4)
    result = tuner.tune(max_iter=max_iter, eta=eta, seed=5)

    schedule = finite_horizon_hyperband_schedule(max_iter, eta)
    grouped = _by_bracket_and_rung(tuner.trials)
    assert sorted(grouped) == sorted(b["N"] - 1 for b in schedule)
    for bracket in schedule:
        rungs = grouped[bracket["N"] - 1]
        assert sorted(rungs) == list(range(bracket["N"]))
        size = bracket["K"]
        for rung in range(bracket["N"]):
            trials = rungs[rung]
            assert len(trials) == size
            assert {trial.resource for trial in trials} == {bracket["T"] * eta**rung}
            assert all((trial.resource or 0) <= max_iter for trial in trials)
            if rung + 1 < bracket["N"]:
                size = max(1, size // eta)
                promoted = sorted(config_key(trial.config) for trial in rungs[rung + 1])
                assert promoted == _best_keys(trials, size, maximize)

    assert result.total_cost == HyperbandTuner.estimate_cost(schedule)
    assert result.total_cost == sum(resource for _, resource in calls)


@pytest.mark.anyio
async def test_hyperband_brackets_independent_of_timing(anyio_backend: str) -> None:
    async def slow_score(config: dict[str, Any], resource: int) -> float:
        # Durations differ per config, so completion order differs from submission order.
        await anyio.sleep(0.001 * DELAY_UNITS[config["kind"]] + 0.002 * config["x"])
        return _score(config, resource)

    def first_rungs(tuner: HyperbandTuner) -> dict[int, list[Any]]:
        grouped = _by_bracket_and_rung(tuner.trials)
        return {
            bracket: [config_key(trial.config) for trial in rungs[0]]
            for bracket, rungs in grouped.items()
        }

    serial = _tuner(slow_score, num_workers=1)
    await serial.tune_async(max_iter=9, eta=3, seed=99)
    parallel = _tuner(slow_score, num_workers=16)
    await parallel.tune_async(max_iter=9, eta=3, seed=99)

    assert first_rungs(serial) == first_rungs(parallel)
    assert sorted(config_key(t.config) for t in serial.trials) == sorted(
        config_key(t.config) for t in parallel.trials
    )


def test_hyperband_bracket_seed_derivation() -> None:
    def first_rung(max_iter: int, seed: int, bracket: int) -> list[Any]:
        tuner = _tuner(_score)
        tuner.tune(max_iter=max_iter, eta=3, seed=seed)
        return [
            config_key(trial.config)
            for trial in tuner.trials
            if trial.bracket == bracket and trial.rung == 0
        ]

    # Bracket 2 starts 9 configs both for max_iter=81 and for max_iter=27.
    assert first_rung(81, 3, bracket=2) == first_rung(27, 3, bracket=2)
    assert first_rung(27, 3, bracket=2) != first_rung(27, 4, bracket=2)
    assert first_rung(27, 3, bracket=1) != first_rung(27, 3, bracket=2)[:3]


@pytest.mark.anyio
async def test_hyperband_brackets_run_concurrently(anyio_backend: str) -> None:
    in_flight = 0
    max_in_flight = 0

    async def score(config: dict[str, Any], resource: int) -> float:
        nonlocal in_flight, max_in_flight
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        await anyio.sleep(0.05)
        in_flight -= 1
        return float(config["x"])

    # Brackets of (9, 3): K = 9, 3 and 3, so 15 rung-0 trials can be in flight together.
    await _tuner(score, num_workers=64).tune_async(max_iter=9, eta=3)

    assert max_in_flight == 15


@pytest.mark.anyio
@pytest.mark.parametrize("budget", [1, 40, 200, 403])
async def test_hyperband_budget_cap(anyio_backend: str, budget: int) -> None:
    async def score(config: dict[str, Any], resource: int) -> float:
        await anyio.sleep(0.001)
        return _score(config, resource)

    tuner = _tuner(score, budget=budget, num_workers=8)

    result = await tuner.tune_async(max_iter=27, eta=3, seed=1)

    assert result.total_cost <= budget
    assert result.total_cost == sum(trial.cost for trial in tuner.trials)


def test_hyperband_paper_sizes_run() -> None:
    tuner = _tuner(_score)

    result = tuner.tune(max_iter=27, eta=3, paper_sizes=True)

    schedule = finite_horizon_hyperband_schedule(27, 3, paper_sizes=True)
    grouped = _by_bracket_and_rung(tuner.trials)
    assert {b: len(rungs[0]) for b, rungs in grouped.items()} == {
        b["N"] - 1: b["K"] for b in schedule
    }
    assert result.total_cost == hyperband_cost(schedule)


@pytest.mark.parametrize(("max_iter", "eta"), [(9, 3), (8, 2)])
def test_hyperband_inner_cost_matches_estimate(max_iter: int, eta: int) -> None:
    calls: list[dict[str, Any]] = []
    lock = threading.Lock()

    def score(config: dict[str, Any]) -> float:
        with lock:
            calls.append(config)
        return -abs(float(config["x"]) - 0.4)

    tuner = HyperbandTuner(SPACE, score, budget=10_000, show_loading=False, num_workers=4)

    result = tuner.tune(max_iter=max_iter, eta=eta, tuner=RandomTuner, seed=8)

    schedule = finite_horizon_hyperband_schedule(max_iter, eta)
    assert result.total_cost == HyperbandTuner.estimate_cost(schedule)
    assert len(calls) == result.total_cost
    assert {trial.bracket for trial in tuner.trials} == {b["N"] - 1 for b in schedule}


def test_hyperband_logs_brackets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="async_tuner.strategies")

    _tuner(_score).tune(max_iter=9, eta=3)

    messages = {record.getMessage() for record in caplog.records}
    assert "bracket 2 starts: K=9 configs at resource T=1, N=3 rungs" in messages
    assert "bracket 0 starts: K=3 configs at resource T=9, N=1 rungs" in messages
    assert "bracket 2, rung 1 of 3: 3 configs at resource 3" in messages


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        pytest.param({"eta": 3}, TypeError, "max_iter", id="missing-max-iter"),
        pytest.param(
            {"max_iter": 0, "eta": 3},
            ValueError,
            r"max_iter must be an integer >= 1 \(got 0\)",
            id="max-iter-0",
        ),
        pytest.param(
            {"max_iter": 27, "eta": 1},
            ValueError,
            r"eta must be an integer >= 2 \(got 1\)",
            id="eta-1",
        ),
        pytest.param(
            {"max_iter": 27.0, "eta": 3},
            TypeError,
            "max_iter must be an integer",
            id="max-iter-float",
        ),
        pytest.param(
            {"max_iter": 27, "eta": 3, "paper_sizes": "yes"},
            TypeError,
            "paper_sizes must be True or False",
            id="paper",
        ),
        pytest.param(
            {"max_iter": 27, "eta": 3, "tuner": RandomTuner, "tuner_params": {"alpha": 1}},
            TypeError,
            "tuner_params must fit",
            id="params-unknown",
        ),
        pytest.param(
            {"max_iter": 27, "eta": 3, "tuner_params": {}},
            ValueError,
            "tuner_params needs tuner=",
            id="params-alone",
        ),
    ],
)
def test_hyperband_invalid_options(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    calls: list[Any] = []

    def score(config: dict[str, Any], resource: int) -> float:
        calls.append(config)
        return 0.0

    with pytest.raises(error, match=match):
        _tuner(score).tune(**options)

    assert calls == []
