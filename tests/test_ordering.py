"""Trial order is the order of the strategy's requests, whatever finishes first."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from async_tuner import HyperbandTuner, RandomTuner, SuccessiveHalvingTuner

SPACE = {"x": {"range": (0.0, 1.0)}, "y": {"range": (-1.0, 1.0)}}


def objective(config: dict[str, Any], resource: int = 1) -> float:
    return -((config["x"] - 0.3) ** 2) - (config["y"] - 0.1) ** 2 - 1.0 / (resource + 1)


async def jittered(config: dict[str, Any], resource: int) -> float:
    # A delay drawn from the config itself scrambles completion order without touching the
    # tuner's own random generator.
    await anyio.sleep(random.Random(repr(sorted(config.items()))).uniform(0, 0.004))
    return objective(config, resource)


async def jittered_single(config: dict[str, Any]) -> float:
    await anyio.sleep(random.Random(repr(sorted(config.items()))).uniform(0, 0.004))
    return objective(config)


def history(tuner: Any) -> list[tuple[Any, ...]]:
    return [
        (trial.bracket, trial.rung, trial.resource, tuple(sorted(trial.config.items())))
        for trial in tuner.trials
    ]


@pytest.mark.anyio
async def test_hyperband_order_independent_of_workers() -> None:
    runs = []
    for workers in (1, 3, 8):
        tuner = HyperbandTuner(
            SPACE, jittered, budget=10_000, num_workers=workers, show_loading=False
        )
        result = await tuner.tune_async(max_iter=9, eta=3, seed=11)
        runs.append((result, history(tuner)))

    first_result, first_history = runs[0]
    for result, trials in runs[1:]:
        assert trials == first_history
        assert result.score_history == first_result.score_history
        assert result.best_config == first_result.best_config


@pytest.mark.anyio
async def test_hyperband_trials_grouped_by_bracket() -> None:
    tuner = HyperbandTuner(SPACE, jittered, budget=10_000, num_workers=8, show_loading=False)
    await tuner.tune_async(max_iter=9, eta=3, seed=5)

    brackets = [trial.bracket for trial in tuner.trials]
    schedule = HyperbandTuner.finite_horizon_hyperband_schedule(9, 3)
    expected_order = [bracket["N"] - 1 for bracket in schedule]
    assert [b for i, b in enumerate(brackets) if i == 0 or brackets[i - 1] != b] == expected_order


@pytest.mark.anyio
async def test_inner_tuner_order_independent_of_workers() -> None:
    runs = []
    for workers in (1, 6):
        tuner = SuccessiveHalvingTuner(
            SPACE, jittered_single, budget=10_000, num_workers=workers, show_loading=False
        )
        result = await tuner.tune_async(eta=2, N=3, K=4, T=3, tuner=RandomTuner, seed=2)
        runs.append((result.score_history, history(tuner)))

    assert runs[0] == runs[1]
