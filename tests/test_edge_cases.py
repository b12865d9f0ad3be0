"""Inputs and outputs at the edges: huge scores, sys.exit, seeds, log paths, concurrent runs."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from async_tuner import RandomTuner, SuccessiveHalvingTuner, TrialStatus

SPACE = {"x": {"range": (0.0, 1.0)}, "k": [1, 2, 3]}


def huge_for_k2(config: dict[str, Any]) -> int | float:
    if config["k"] == 2:
        return 10**400
    return config["x"]


@pytest.mark.parametrize("workers", [1, 3], ids=["inline", "pool"])
def test_overflowing_score_fails_only_its_trial(workers: int) -> None:
    configs = RandomTuner.generate_configs(SPACE, 12, seed=4)
    tuner = RandomTuner(SPACE, huge_for_k2, budget=12, num_workers=workers, show_loading=False)

    result = tuner.tune(seed=4)

    failed = [trial for trial in tuner.trials if trial.status is TrialStatus.FAILED]
    assert len(failed) == sum(1 for config in configs if config["k"] == 2)
    assert all("not a real number that fits a float" in (trial.error or "") for trial in failed)
    assert result.score_history == [c["x"] for c in configs if c["k"] != 2]


def exit_for_k3(config: dict[str, Any]) -> float:
    if config["k"] == 3:
        sys.exit(7)
    return float(config["x"])


@pytest.mark.parametrize("workers", [1, 2], ids=["inline", "pool"])
def test_sys_exit_fails_only_its_trial(workers: int) -> None:
    configs = RandomTuner.generate_configs(SPACE, 10, seed=2)
    tuner = RandomTuner(SPACE, exit_for_k3, budget=10, num_workers=workers, show_loading=False)

    result = tuner.tune(seed=2)

    errors = [trial.error for trial in tuner.trials if trial.status is TrialStatus.FAILED]
    assert errors == ["SystemExit: 7"] * sum(1 for c in configs if c["k"] == 3)
    assert result.total_cost == 10


def test_numpy_seed_matches_int_seed() -> None:
    with_int = RandomTuner(SPACE, exit_for_k3, budget=6, show_loading=False).tune(seed=5)
    with_numpy = RandomTuner(SPACE, exit_for_k3, budget=6, show_loading=False).tune(
        seed=np.int64(5)
    )

    assert with_numpy.score_history == with_int.score_history


@pytest.mark.parametrize("seed", [1.5, "abc", True], ids=["float", "str", "bool"])
def test_bad_seed_rejected(seed: Any) -> None:
    calls: list[dict[str, Any]] = []
    tuner = RandomTuner(SPACE, calls.append, budget=3, show_loading=False)

    with pytest.raises(TypeError, match="seed must be an integer or None"):
        tuner.tune(seed=seed)
    assert calls == []


def test_numpy_bool_accepted_for_maximize() -> None:
    tuner = RandomTuner(
        SPACE, lambda c: c["x"], maximize=np.bool_(False), budget=8, show_loading=False
    )

    result = tuner.tune(seed=1)

    assert tuner.maximize is False
    assert result.best_score == min(result.score_history)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("run_name", "../../escape", id="name-parent"),
        pytest.param("run_dir", "../outside", id="dir-parent"),
        pytest.param("run_name", "/tmp/absolute", id="name-absolute"),
    ],
)
def test_log_folder_outside_log_dir_rejected(tmp_path: Path, field: str, value: str) -> None:
    arguments: dict[str, Any] = {"run_dir": "runs", "run_name": "one", field: value}

    with pytest.raises(ValueError, match=f"{field} must be a relative folder name"):
        RandomTuner(SPACE, lambda c: 0.0, log=True, log_dir=tmp_path, **arguments)


@pytest.mark.anyio
async def test_second_concurrent_run_rejected() -> None:
    async def slow(config: dict[str, Any]) -> float:
        await anyio.sleep(0.01)
        return float(config["x"])

    tuner = RandomTuner(SPACE, slow, budget=5, show_loading=False)
    errors: list[BaseException] = []

    async def second() -> None:
        await anyio.sleep(0.005)
        try:
            await tuner.tune_async(seed=2)
        except RuntimeError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(second)
        result = await tuner.tune_async(seed=1)

    assert len(errors) == 1
    assert "already running" in str(errors[0])
    assert result.total_cost == 5


def test_halving_with_huge_k_and_small_budget() -> None:
    calls: list[tuple[dict[str, Any], int]] = []

    def record(config: dict[str, Any], resource: int) -> float:
        calls.append((config, resource))
        return float(config["x"])

    tuner = SuccessiveHalvingTuner(SPACE, record, budget=6, show_loading=False)

    result = tuner.tune(eta=2, N=3, K=10**12, T=2, seed=3)

    assert result.total_cost == 6
    assert [resource for _, resource in calls] == [2, 2, 2]


def test_halving_rejects_unusable_rung_count() -> None:
    tuner = SuccessiveHalvingTuner(SPACE, lambda c, r: 0.0, budget=6, show_loading=False)

    with pytest.raises(ValueError, match="last rung's resource"):
        tuner.tune(eta=2, N=10**9, K=4, T=1)


@pytest.mark.anyio
async def test_thread_durations_exclude_queue_wait() -> None:
    import time

    sleep_s = 0.1
    tuner = RandomTuner(
        SPACE, lambda config: time.sleep(sleep_s) or 0.0, budget=4, show_loading=False
    )

    result = await tuner.tune_async(seed=1)

    starts = sorted(trial.started_at or 0.0 for trial in tuner.trials)
    assert len(result.execution_times) == 4
    # A trial queued behind a running one would count its wait too, about twice the sleep.
    assert all(sleep_s <= duration < 1.8 * sleep_s for duration in result.execution_times)
    assert all(later - earlier >= 0.9 * sleep_s for earlier, later in itertools.pairwise(starts))


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


def raise_unprintable(config: dict[str, Any]) -> float:
    if config["k"] == 1:
        raise UnprintableError
    return float(config["x"])


async def raise_unprintable_async(config: dict[str, Any]) -> float:
    return raise_unprintable(config)


@pytest.mark.parametrize(
    ("eval_fn", "workers"),
    [
        pytest.param(raise_unprintable, 1, id="inline"),
        pytest.param(raise_unprintable, 3, id="threads"),
        pytest.param(raise_unprintable_async, 2, id="async"),
    ],
)
def test_unprintable_exception_fails_its_trial(eval_fn: Any, workers: int) -> None:
    configs = RandomTuner.generate_configs(SPACE, 9, seed=6)
    tuner = RandomTuner(SPACE, eval_fn, budget=9, num_workers=workers, show_loading=False)

    result = tuner.tune(seed=6)

    errors = [trial.error for trial in tuner.trials if trial.status is TrialStatus.FAILED]
    expected = "UnprintableError: <str() of the UnprintableError failed>"
    assert errors == [expected] * sum(1 for c in configs if c["k"] == 1)
    assert result.total_cost == 9


@pytest.mark.anyio
async def test_cancelled_run_reports_spent_cost(tmp_path: Path) -> None:
    import json
    import time

    def slow(config: dict[str, Any]) -> float:
        time.sleep(0.05)
        return float(config["x"])

    tuner = RandomTuner(
        SPACE,
        slow,
        budget=100,
        num_workers=4,
        log=True,
        log_dir=tmp_path,
        run_dir="runs",
        run_name="cut",
        show_loading=False,
    )
    with anyio.move_on_after(0.3):
        await tuner.tune_async(seed=1)

    report = json.loads((tmp_path / "runs" / "cut" / "tuner_report.json").read_text())
    journal = (tmp_path / "runs" / "cut" / "trials.jsonl").read_text().splitlines()
    assert report["cost"] == len(tuner.trials)
    assert report["cost"] == len(journal)


def test_decimal_score_accepted() -> None:
    from decimal import Decimal

    tuner = RandomTuner(SPACE, lambda c: Decimal(str(c["x"])), budget=5, show_loading=False)

    result = tuner.tune(seed=2)

    configs = RandomTuner.generate_configs(SPACE, 5, seed=2)
    assert result.score_history == [float(Decimal(str(c["x"]))) for c in configs]


def test_eval_fn_wrong_arity_rejected_before_trials() -> None:
    calls: list[Any] = []

    def two_arguments(config: dict[str, Any], extra: int) -> float:
        calls.append(config)
        return 0.0

    tuner = RandomTuner(SPACE, two_arguments, budget=4, num_workers=2, show_loading=False)

    with pytest.raises(TypeError, match=r"eval_fn must accept \(config\)"):
        tuner.tune(seed=1)
    assert calls == []


def test_resource_mode_needs_two_arguments() -> None:
    calls: list[Any] = []
    tuner = SuccessiveHalvingTuner(SPACE, calls.append, budget=10, show_loading=False)

    with pytest.raises(TypeError, match=r"eval_fn must accept \(config, resource\) in resource"):
        tuner.tune(eta=2, N=2, K=2, T=1, seed=1)
    assert calls == []
