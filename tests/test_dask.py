"""Evaluations on a Dask cluster through ``Client.get_executor()``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from async_tuner import RandomTuner, TrialStatus

distributed = pytest.importorskip("distributed")

SPACE = {"x": {"range": (0.0, 1.0)}, "k": [1, 2, 3]}


def score_or_fail(config: dict[str, Any]) -> float:
    if config["k"] == 2:
        raise ValueError(f"k={config['k']} is not allowed")
    return float(config["x"] * config["k"])


def record_thread(config: dict[str, Any]) -> str:
    return threading.current_thread().name


@pytest.fixture(scope="module")
def dask_executor() -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            # A free port on loopback: a fixed one clashes with any other cluster on the machine.
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client.get_executor()


def test_dask_executor_matches_local_threads(dask_executor: Any) -> None:
    configs = RandomTuner.generate_configs(SPACE, 24, seed=7)
    expected_history = [score_or_fail(c) for c in configs if c["k"] != 2]
    tuner = RandomTuner(
        SPACE, score_or_fail, budget=24, num_workers=2, executor=dask_executor, show_loading=False
    )

    result = tuner.tune(seed=7)

    assert result.score_history == expected_history
    assert result.best_score == max(expected_history)
    assert result.total_cost == 24


def test_dask_executor_failures_are_recorded(dask_executor: Any) -> None:
    configs = RandomTuner.generate_configs(SPACE, 12, seed=3)
    tuner = RandomTuner(
        SPACE, score_or_fail, budget=12, num_workers=2, executor=dask_executor, show_loading=False
    )

    tuner.tune(seed=3)

    failed = [trial for trial in tuner.trials if trial.status is TrialStatus.FAILED]
    assert len(failed) == sum(1 for c in configs if c["k"] == 2)
    assert all(trial.error == "ValueError: k=2 is not allowed" for trial in failed)


def test_dask_executor_runs_lambdas_on_dask_workers(dask_executor: Any) -> None:
    tuner = RandomTuner(
        SPACE,
        lambda config: record_thread(config),
        budget=6,
        num_workers=2,
        executor=dask_executor,
        score_fn=lambda name: 0.0,
        show_loading=False,
    )

    tuner.tune(seed=0)

    names = {trial.logged for trial in tuner.trials}
    assert names
    assert all("async_tuner" not in name for name in names)
    assert all(name != threading.current_thread().name for name in names)
