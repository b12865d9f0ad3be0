"""Tests for SuccessiveHalvingTuner in resource mode and in inner-tuner mode."""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from async_tuner._engine import Tuner
from async_tuner._run import Scope
from async_tuner._space import config_key
from async_tuner.strategies._coordinate_descent import CoordinateDescentTuner
from async_tuner.strategies._random import RandomTuner
from async_tuner.strategies._successive_halving import SuccessiveHalvingTuner, survivor_order

SPACE = {"x": {"range": (0.0, 1.0)}}
DIRECTIONS = [pytest.param(True, id="maximize"), pytest.param(False, id="minimize")]

Call = tuple[dict[str, Any], int]


class ResourceRecorder:
    """An eval_fn(config, resource) that records its calls."""

    def __init__(self, score: Callable[[dict[str, Any], int], float]) -> None:
        self.score = score
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def __call__(self, config: dict[str, Any], resource: int) -> float:
        with self._lock:
            self.calls.append((dict(config), resource))
        return self.score(config, resource)


def _wobbly(config: dict[str, Any], resource: int) -> float:
    """A score whose ranking of configs changes with the resource."""
    return float(math.sin(7.0 * config["x"] * resource) + config["x"])


def _tuner(eval_fn: Callable[..., Any], **kwargs: Any) -> SuccessiveHalvingTuner:
    kwargs.setdefault("show_loading", False)
    kwargs.setdefault("budget", 10_000)
    return SuccessiveHalvingTuner(SPACE, eval_fn, **kwargs)


def _rank(scores: list[float | None], maximize: bool) -> list[int]:
    """Rank indices best first, ties by index, failures and NaN last (reference version)."""
    valid = {i: s for i, s in enumerate(scores) if s is not None and not math.isnan(s)}
    invalid = [i for i in range(len(scores)) if i not in valid]
    # sorted() with reverse=True still keeps equal items in their original order.
    return sorted(valid, key=valid.__getitem__, reverse=maximize) + invalid


def _simulate(
    first_rung: list[dict[str, Any]],
    score: Callable[[dict[str, Any], int], float | None],
    *,
    eta: int,
    N: int,
    T: int,
    maximize: bool,
) -> list[Call]:
    """Return the calls successive halving must make, rung by rung, best survivors first."""
    calls: list[Call] = []
    configs, resource = list(first_rung), T
    for _ in range(N):
        calls += [(config, resource) for config in configs]
        ranked = _rank([score(config, resource) for config in configs], maximize)
        configs = [configs[i] for i in ranked[: max(1, len(configs) // eta)]]
        resource *= eta
    return calls


# Resource mode


@pytest.mark.parametrize("maximize", DIRECTIONS)
@pytest.mark.parametrize(("eta", "N", "K", "T"), [(3, 3, 9, 1), (2, 4, 10, 2), (3, 2, 4, 5)])
def test_successive_halving_exact_calls(maximize: bool, eta: int, N: int, K: int, T: int) -> None:
    recorder = ResourceRecorder(_wobbly)

    _tuner(recorder, maximize=maximize).tune(eta=eta, N=N, K=K, T=T, seed=7)

    first_rung = [config for config, _ in recorder.calls[:K]]
    expected = _simulate(first_rung, _wobbly, eta=eta, N=N, T=T, maximize=maximize)
    assert recorder.calls == expected
    assert len({config_key(config) for config in first_rung}) == K


@pytest.mark.parametrize("maximize", DIRECTIONS)
def test_successive_halving_keeps_best_not_worst(maximize: bool) -> None:
    recorder = ResourceRecorder(lambda config, resource: config["x"])

    result = _tuner(recorder, maximize=maximize).tune(eta=3, N=3, K=9, T=1, seed=1)

    first_xs = [config["x"] for config, _ in recorder.calls[:9]]
    final_config, final_resource = recorder.calls[-1]
    best_x = max(first_xs) if maximize else min(first_xs)
    assert final_config["x"] == best_x
    assert final_resource == 9
    assert result.best_score == best_x


def test_successive_halving_failures_rank_last() -> None:
    def score(config: dict[str, Any], resource: int) -> float:
        if config["x"] < 0.4:
            msg = "diverged"
            raise FloatingPointError(msg)
        if config["x"] < 0.6:
            return math.nan
        return float(config["x"])

    def reference(config: dict[str, Any], resource: int) -> float | None:
        try:
            return score(config, resource)
        except FloatingPointError:
            return None

    recorder = ResourceRecorder(score)

    # Minimizing: the failed and NaN configs have the "smallest" x but must not survive.
    _tuner(recorder, maximize=False).tune(eta=2, N=3, K=12, T=1, seed=11)

    first_rung = [config for config, _ in recorder.calls[:12]]
    expected = _simulate(first_rung, reference, eta=2, N=3, T=1, maximize=False)
    assert recorder.calls == expected
    assert any(config["x"] < 0.6 for config in first_rung)


@pytest.mark.parametrize(
    ("scores", "maximize", "expected"),
    [
        ([1.0, None, 3.0, math.nan, 3.0, 1.0], True, [2, 4, 0, 5, 1, 3]),
        ([1.0, None, 3.0, math.nan, 3.0, 1.0], False, [0, 5, 2, 4, 1, 3]),
        ([None, None], True, [0, 1]),
        ([], False, []),
    ],
)
def test_survivor_order_ties_and_failures(
    scores: list[float | None], maximize: bool, expected: list[int]
) -> None:
    assert survivor_order(scores, maximize=maximize) == expected


@pytest.mark.parametrize(
    ("eta", "N", "K", "T"), [(3, 3, 9, 1), (2, 4, 10, 3), (3, 1, 5, 2), (4, 3, 7, 1), (2, 3, 1, 4)]
)
def test_successive_halving_cost_matches_estimate(eta: int, N: int, K: int, T: int) -> None:
    recorder = ResourceRecorder(_wobbly)
    tuner = _tuner(recorder)

    result = tuner.tune(eta=eta, N=N, K=K, T=T)

    assert result.total_cost == SuccessiveHalvingTuner.estimate_cost(eta, N, K, T)
    assert result.total_cost == sum(resource for _, resource in recorder.calls)
    assert [trial.resource for trial in tuner.trials] == [r for _, r in recorder.calls]


@pytest.mark.anyio
@pytest.mark.parametrize("budget", [1, 20, 50, 107])
async def test_successive_halving_budget_cap(anyio_backend: str, budget: int) -> None:
    async def score(config: dict[str, Any], resource: int) -> float:
        await anyio.sleep(0.001)
        return _wobbly(config, resource)

    tuner = _tuner(score, budget=budget, num_workers=8)

    # A full run would cost 27 + 27 + 27 + 27 = 108.
    result = await tuner.tune_async(eta=3, N=4, K=27, T=1, seed=2)

    assert result.total_cost <= budget
    assert result.total_cost == sum(trial.cost for trial in tuner.trials)


@settings(max_examples=30, deadline=None)
@given(
    eta=st.integers(min_value=2, max_value=4),
    N=st.integers(min_value=1, max_value=4),
    K=st.integers(min_value=1, max_value=20),
    T=st.integers(min_value=1, max_value=5),
    budget=st.integers(min_value=1, max_value=400),
)
def test_successive_halving_budget_property(eta: int, N: int, K: int, T: int, budget: int) -> None:
    tuner = _tuner(ResourceRecorder(_wobbly), budget=budget)
    estimate = SuccessiveHalvingTuner.estimate_cost(eta, N, K, T)

    result = tuner.tune(eta=eta, N=N, K=K, T=T, seed=0)

    assert result.total_cost <= budget
    assert result.total_cost == sum(trial.cost for trial in tuner.trials)
    if budget >= estimate:
        assert result.total_cost == estimate


@pytest.mark.anyio
async def test_successive_halving_rung_runs_concurrently(anyio_backend: str) -> None:
    in_flight = 0
    max_in_flight = 0

    async def score(config: dict[str, Any], resource: int) -> float:
        nonlocal in_flight, max_in_flight
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        await anyio.sleep(0.05)
        in_flight -= 1
        return float(config["x"])

    await _tuner(score, num_workers=16).tune_async(eta=3, N=2, K=9, T=1)

    assert max_in_flight == 9


def test_successive_halving_logs_rungs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="async_tuner.strategies._successive_halving")

    _tuner(ResourceRecorder(_wobbly)).tune(eta=3, N=3, K=9, T=2)

    messages = [
        record.getMessage()
        for record in caplog.records
        if record.name == "async_tuner.strategies._successive_halving"
    ]
    assert messages == [
        "rung 0 of 3: 9 configs at resource 2",
        "rung 1 of 3: 3 configs at resource 6",
        "rung 2 of 3: 1 configs at resource 18",
    ]


# Inner-tuner mode


def _make_recording_tuner() -> tuple[type[Tuner], list[dict[str, Any]]]:
    """Return an inner Tuner class that records each run, and the list of records."""
    runs: list[dict[str, Any]] = []

    class RecordingTuner(Tuner):
        async def tune_impl(self, scope: Scope, *, label: str = "") -> None:
            record: dict[str, Any] = {
                "label": label,
                "start_config": self.start_config,
                "start_score": self.start_score,
                "budget": self.budget,
                "remaining": scope.remaining,
            }
            runs.append(record)
            count = int(scope.remaining)
            trials = await scope.evaluate_many(
                [scope.space.sample(scope.rng) for _ in range(count)]
            )
            record["trials"] = [(trial.config, trial.score) for trial in trials]

    return RecordingTuner, runs


@pytest.mark.parametrize("maximize", DIRECTIONS)
def test_successive_halving_inner_survivor_starts(maximize: bool) -> None:
    recording_tuner, runs = _make_recording_tuner()
    eta, N, K, T = 2, 3, 8, 3

    def score(config: dict[str, Any]) -> float:
        return math.sin(5.0 * config["x"])

    _tuner(score, maximize=maximize, num_workers=4).tune(
        eta=eta, N=N, K=K, T=T, tuner=recording_tuner, tuner_params={"label": "inner"}
    )

    assert all(run["label"] == "inner" for run in runs)
    by_rung = [
        [run for run in runs if run["budget"] == budget] for budget in (T - 1, T * eta, T * eta**2)
    ]
    assert [len(rung) for rung in by_rung] == [8, 4, 2]
    assert len(runs) == 14

    # Rung 0: the start was evaluated by successive halving itself, inside the budget T.
    for run in by_rung[0]:
        assert run["start_score"] == score(run["start_config"])
        assert run["remaining"] == T - 1

    # Later rungs start from the best result of the previous rung's runs, with its score.
    for previous, current in itertools.pairwise(by_rung):
        results = []
        for run in previous:
            candidates = [(run["start_config"], run["start_score"]), *run["trials"]]
            results.append(max(candidates, key=lambda c: c[1] if maximize else -c[1]))
        ranked = _rank([s for _, s in results], maximize)
        survivors = [results[i] for i in ranked[: len(current)]]
        expected = sorted(config_key(config) for config, _ in survivors)
        assert sorted(config_key(run["start_config"]) for run in current) == expected
        for run in current:
            assert run["start_score"] == score(run["start_config"])
            assert run["remaining"] == run["budget"]


def test_successive_halving_inner_failed_start_not_repeated() -> None:
    recording_tuner, runs = _make_recording_tuner()

    def score(config: dict[str, Any]) -> float:
        if config["x"] < 0.5:
            msg = "diverged"
            raise FloatingPointError(msg)
        return float(config["x"])

    tuner = _tuner(score)
    tuner.tune(eta=2, N=2, K=8, T=3, tuner=recording_tuner, seed=21)

    failed_starts = [run for run in runs if run["start_config"]["x"] < 0.5]
    assert failed_starts
    for run in failed_starts:
        # The worst score the constructor accepts, so the start is not evaluated again.
        assert run["start_score"] == -math.inf
    starts = [config_key(run["start_config"]) for run in runs if run["budget"] == 2]
    evaluated = [config_key(trial.config) for trial in tuner.trials]
    assert all(evaluated.count(key) == 1 for key in starts)


@pytest.mark.parametrize(("eta", "N", "K", "T"), [(3, 3, 9, 2), (2, 2, 5, 1), (2, 3, 6, 3)])
def test_successive_halving_inner_cost_matches_estimate(eta: int, N: int, K: int, T: int) -> None:
    calls: list[dict[str, Any]] = []

    def score(config: dict[str, Any]) -> float:
        calls.append(config)
        return float(-abs(config["x"] - 0.3))

    result = _tuner(score, num_workers=3).tune(eta=eta, N=N, K=K, T=T, tuner=RandomTuner)

    assert result.total_cost == SuccessiveHalvingTuner.estimate_cost(eta, N, K, T)
    assert len(calls) == result.total_cost


def test_successive_halving_inner_descent_converges() -> None:
    def score(config: dict[str, Any]) -> float:
        return float(-((config["x"] - 0.3) ** 2))

    result = _tuner(score, num_workers=4).tune(
        eta=3,
        N=3,
        K=9,
        T=4,
        tuner=CoordinateDescentTuner,
        tuner_params={"alpha": 0.1, "decay_rate": 0.5},
    )

    assert result.total_cost <= SuccessiveHalvingTuner.estimate_cost(3, 3, 9, 4)
    assert result.best_config is not None
    assert result.best_config["x"] == pytest.approx(0.3, abs=0.05)


@pytest.mark.anyio
async def test_successive_halving_inner_budget_cap(anyio_backend: str) -> None:
    async def score(config: dict[str, Any]) -> float:
        await anyio.sleep(0.001)
        return float(config["x"])

    tuner = _tuner(score, budget=25, num_workers=8)

    result = await tuner.tune_async(eta=3, N=3, K=9, T=2, tuner=RandomTuner, seed=4)

    assert result.total_cost == 25
    assert sum(trial.cost for trial in tuner.trials) == 25


def test_successive_halving_inner_seed_determinism() -> None:
    def run(num_workers: int) -> list[Any]:
        tuner = _tuner(lambda c: math.cos(9 * c["x"]), num_workers=num_workers)
        tuner.tune(eta=2, N=3, K=6, T=3, tuner=RandomTuner, seed=123)
        return sorted(config_key(trial.config) for trial in tuner.trials)

    assert run(1) == run(1)
    assert run(1) == run(8)


# Options


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        pytest.param({"N": 3, "K": 9, "T": 1}, TypeError, "eta", id="missing-eta"),
        pytest.param(
            {"eta": 1, "N": 3, "K": 9, "T": 1},
            ValueError,
            r"eta must be an integer >= 2 \(got 1\)",
            id="eta-1",
        ),
        pytest.param(
            {"eta": 3, "N": 0, "K": 9, "T": 1},
            ValueError,
            r"N must be an integer >= 1 \(got 0\)",
            id="N-0",
        ),
        pytest.param(
            {"eta": 3, "N": 3, "K": -2, "T": 1},
            ValueError,
            r"K must be an integer >= 1 \(got -2\)",
            id="K-neg",
        ),
        pytest.param(
            {"eta": 3, "N": 3, "K": 9, "T": 1.5}, TypeError, "T must be an integer", id="T-float"
        ),
        pytest.param(
            {"eta": 3, "N": 3, "K": 9, "T": True}, TypeError, "T must be an integer", id="T-bool"
        ),
        pytest.param(
            {"eta": 3, "N": 3, "K": 9, "T": 1, "tuner": int},
            TypeError,
            "tuner must be a strategy class",
            id="tuner-int",
        ),
        pytest.param(
            {"eta": 3, "N": 3, "K": 9, "T": 1, "tuner": RandomTuner, "tuner_params": [1]},
            TypeError,
            "tuner_params must be a dict",
            id="params-list",
        ),
        pytest.param(
            {"eta": 3, "N": 3, "K": 9, "T": 1, "tuner": RandomTuner, "tuner_params": {"alpha": 1}},
            TypeError,
            "tuner_params must fit the options of RandomTuner.tune_impl .*'alpha'",
            id="params-unknown",
        ),
        pytest.param(
            {
                "eta": 3,
                "N": 3,
                "K": 9,
                "T": 1,
                "tuner": CoordinateDescentTuner,
                "tuner_params": {"alpha": 0.1},
            },
            TypeError,
            "tuner_params must fit .*'decay_rate'",
            id="params-missing",
        ),
        pytest.param(
            {"eta": 3, "N": 3, "K": 9, "T": 1, "tuner_params": {"seed": 1}},
            ValueError,
            "tuner_params needs tuner=",
            id="params-without-tuner",
        ),
    ],
)
def test_successive_halving_invalid_options(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    recorder = ResourceRecorder(_wobbly)

    with pytest.raises(error, match=match):
        _tuner(recorder).tune(**options)

    assert recorder.calls == []


def test_successive_halving_tuner_instance_rejected() -> None:
    instance = RandomTuner(SPACE, lambda c: 0.0)

    with pytest.raises(TypeError, match="tuner must be a strategy class"):
        _tuner(lambda c: 0.0).tune(eta=3, N=2, K=3, T=1, tuner=instance)
