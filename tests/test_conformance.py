"""Properties every strategy must have, checked on each of them alike."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import pytest

from async_tuner import (
    CoordinateDescentTuner,
    GridTuner,
    HyperbandTuner,
    RandomTuner,
    SuccessiveHalvingTuner,
    TrialStatus,
    Tuner,
)
from async_tuner._space import SearchSpace

SPACE = {
    "x": {"range": (0.0, 1.0)},
    "lr": {"range": (1e-4, 1e-1), "log": True},
    "depth": {"range": (1, 8), "type": int},
    "kind": ["a", "b", "c"],
}
KIND_BONUS = {"a": 0.0, "b": 0.3, "c": 0.1}


def objective(config: dict[str, Any]) -> float:
    return (
        -((config["x"] - 0.6) ** 2)
        - (math.log10(config["lr"]) + 2.5) ** 2 / 10
        - (config["depth"] - 5) ** 2 / 50
        + KIND_BONUS[config["kind"]]
    )


def objective_at(config: dict[str, Any], resource: int) -> float:
    return objective(config) - 1.0 / resource


STRATEGIES: list[Any] = [
    pytest.param(RandomTuner, False, {}, id="random"),
    pytest.param(GridTuner, False, {}, id="grid"),
    pytest.param(
        CoordinateDescentTuner, False, {"alpha": 0.2, "decay_rate": 0.5}, id="coordinate-descent"
    ),
    pytest.param(
        SuccessiveHalvingTuner, True, {"eta": 2, "N": 3, "K": 8, "T": 1}, id="halving-resource"
    ),
    pytest.param(
        SuccessiveHalvingTuner,
        False,
        {"eta": 2, "N": 3, "K": 4, "T": 2, "tuner": RandomTuner},
        id="halving-inner-random",
    ),
    pytest.param(HyperbandTuner, True, {"max_iter": 9, "eta": 3}, id="hyperband-resource"),
    pytest.param(
        HyperbandTuner,
        False,
        {
            "max_iter": 4,
            "eta": 2,
            "tuner": CoordinateDescentTuner,
            "tuner_params": {"alpha": 0.25, "decay_rate": 0.5},
        },
        id="hyperband-inner-descent",
    ),
]


class Recorder:
    """An eval_fn that records every call it receives."""

    def __init__(self, resource_mode: bool) -> None:
        self.calls: list[tuple[dict[str, Any], int | None]] = []
        self._lock = threading.Lock()
        self.fn: Callable[..., float] = self._with_resource if resource_mode else self._plain

    def _plain(self, config: dict[str, Any]) -> float:
        with self._lock:
            self.calls.append((dict(config), None))
        return objective(config)

    def _with_resource(self, config: dict[str, Any], resource: int) -> float:
        with self._lock:
            self.calls.append((dict(config), resource))
        return objective_at(config, resource)


def seeded(strategy: type[Tuner], options: dict[str, Any], seed: int) -> dict[str, Any]:
    if strategy is GridTuner:
        return dict(options)
    return {**options, "seed": seed}


@pytest.mark.parametrize(("strategy", "resource_mode", "options"), STRATEGIES)
@pytest.mark.parametrize("budget", [7, 40])
@pytest.mark.parametrize("workers", [1, 4])
def test_strategy_stays_within_budget_and_space(
    strategy: type[Tuner],
    resource_mode: bool,
    options: dict[str, Any],
    budget: int,
    workers: int,
) -> None:
    recorder = Recorder(resource_mode)
    tuner = strategy(SPACE, recorder.fn, budget=budget, num_workers=workers, show_loading=False)
    space = SearchSpace.from_dict(SPACE)

    result = tuner.tune(**seeded(strategy, options, seed=3))

    spent = sum(1 if resource is None else resource for _, resource in recorder.calls)
    assert spent <= budget
    assert result.total_cost == spent
    assert sum(trial.cost for trial in tuner.trials) == spent
    assert len(tuner.trials) == len(recorder.calls)
    for config, _ in recorder.calls:
        space.check_config(config, "an evaluated config")


@pytest.mark.parametrize(("strategy", "resource_mode", "options"), STRATEGIES)
@pytest.mark.parametrize("maximize", [True, False], ids=["maximize", "minimize"])
def test_strategy_reports_best_trial(
    strategy: type[Tuner], resource_mode: bool, options: dict[str, Any], maximize: bool
) -> None:
    recorder = Recorder(resource_mode)
    tuner = strategy(SPACE, recorder.fn, maximize=maximize, budget=60, show_loading=False)

    result = tuner.tune(**seeded(strategy, options, seed=5))

    scores = [trial.score for trial in tuner.trials if trial.status is TrialStatus.OK]
    expected = max(scores) if maximize else min(scores)
    best_trial = next(trial for trial in tuner.trials if trial.score == expected)
    assert result.best_score == expected
    assert result.best_config == best_trial.config


@pytest.mark.parametrize(("strategy", "resource_mode", "options"), STRATEGIES)
def test_strategy_seed_repeats_across_workers(
    strategy: type[Tuner], resource_mode: bool, options: dict[str, Any]
) -> None:
    # Concurrent brackets race for a budget that cuts them short, so give them all they need.
    budget = 10_000 if strategy is HyperbandTuner else 50
    histories = []
    for workers in (1, 5):
        recorder = Recorder(resource_mode)
        tuner = strategy(SPACE, recorder.fn, budget=budget, num_workers=workers, show_loading=False)
        result = tuner.tune(**seeded(strategy, options, seed=9))
        configs = [trial.config for trial in tuner.trials]
        histories.append((result.score_history, configs, result.total_cost))

    assert histories[0] == histories[1]
