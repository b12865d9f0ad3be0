"""Tests for CoordinateDescentTuner, run through the real engine."""

from __future__ import annotations

import copy
import itertools
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from async_tuner._space import RangeParam, config_key
from async_tuner._types import TrialStatus
from async_tuner.strategies._coordinate_descent import (
    CoordinateDescentTuner,
    line_point,
    line_step,
    step_can_shrink,
)

UNIT_SQUARE = {"x": {"range": (0.0, 1.0)}, "y": {"range": (0.0, 1.0)}}
DIRECTIONS = [pytest.param(True, id="maximize"), pytest.param(False, id="minimize")]


class Recorder:
    """An eval_fn that records every config it is called with."""

    def __init__(self, score: Callable[[dict[str, Any]], float]) -> None:
        self.score = score
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, config: dict[str, Any]) -> float:
        with self._lock:
            self.calls.append(dict(config))
        return self.score(config)

    def distinct(self) -> int:
        return len({config_key(config) for config in self.calls})


def _tuner(
    search_space: dict[str, Any], eval_fn: Callable[..., Any], **kwargs: Any
) -> CoordinateDescentTuner:
    kwargs.setdefault("show_loading", False)
    return CoordinateDescentTuner(search_space, eval_fn, **kwargs)


def _separable(config: dict[str, Any]) -> float:
    return float(-((config["x"] - 0.3) ** 2) - (config["y"] - 0.7) ** 2)


# Convergence


@pytest.mark.parametrize("maximize", DIRECTIONS)
def test_coordinate_descent_separable_optimum(maximize: bool) -> None:
    sign = 1 if maximize else -1
    bonus = {"a": 0.0, "b": 0.5, "c": 0.2}
    recorder = Recorder(lambda c: sign * (_separable(c) + bonus[c["kind"]]))
    space = {**UNIT_SQUARE, "kind": ["a", "b", "c"]}

    result = _tuner(space, recorder, maximize=maximize, budget=500).tune(
        alpha=0.1, decay_rate=0.5, seed=0
    )

    assert result.best_config is not None
    assert result.best_config["x"] == pytest.approx(0.3, abs=1e-2)
    assert result.best_config["y"] == pytest.approx(0.7, abs=1e-2)
    assert result.best_config["kind"] == "b"
    assert result.total_cost < 500
    assert recorder.distinct() == len(recorder.calls)


@pytest.mark.anyio
async def test_coordinate_descent_async_optimum(anyio_backend: str) -> None:
    async def score(config: dict[str, Any]) -> float:
        await anyio.lowlevel.checkpoint()
        return _separable(config)

    tuner = _tuner(UNIT_SQUARE, score, budget=300, num_workers=4)
    result = await tuner.tune_async(alpha=0.2, decay_rate=0.5, seed=3)

    assert result.best_config is not None
    assert result.best_config["x"] == pytest.approx(0.3, abs=1e-2)
    assert result.best_config["y"] == pytest.approx(0.7, abs=1e-2)
    keys = [config_key(trial.config) for trial in tuner.trials]
    assert len(set(keys)) == len(keys)


def test_coordinate_descent_log_range_optimum() -> None:
    recorder = Recorder(lambda c: -((math.log10(c["lr"]) + 3) ** 2))
    space = {"lr": {"range": (1e-5, 1e-1), "log": True}}

    result = _tuner(space, recorder, budget=300).tune(alpha=0.1, decay_rate=0.5)

    assert result.best_config is not None
    assert math.log10(result.best_config["lr"]) == pytest.approx(-3, abs=1e-2)
    assert all(1e-5 <= call["lr"] <= 1e-1 for call in recorder.calls)


def test_coordinate_descent_int_range_reaches_optimum() -> None:
    recorder = Recorder(lambda c: -abs(c["n"] - 73))
    space = {"n": {"range": (0, 100), "type": int}}

    result = _tuner(space, recorder, budget=500).tune(alpha=0.1, decay_rate=0.5)

    assert result.best_config == {"n": 73}
    assert all(type(call["n"]) is int for call in recorder.calls)
    assert all(0 <= call["n"] <= 100 for call in recorder.calls)
    assert recorder.distinct() == len(recorder.calls)
    assert result.total_cost < 500


# Termination


def test_coordinate_descent_discrete_space_stops() -> None:
    values_a = {0: 0.0, 1: 3.0, 2: 1.0, 3: 2.0}
    values_b = {"x": 0.0, "y": 0.5, "z": 2.0}
    recorder = Recorder(lambda c: values_a[c["a"]] + values_b[c["b"]])
    space = {"a": [0, 1, 2, 3], "b": ["x", "y", "z"]}
    best = max(
        itertools.product(values_a, values_b), key=lambda ab: values_a[ab[0]] + values_b[ab[1]]
    )

    result = _tuner(space, recorder, budget=1000).tune(alpha=0.5, decay_rate=0.5)

    assert result.best_config == {"a": best[0], "b": best[1]}
    assert len(recorder.calls) == recorder.distinct()
    assert result.total_cost == len(recorder.calls)
    assert len(recorder.calls) < len(values_a) * len(values_b) + 1


def test_coordinate_descent_int_space_stops() -> None:
    recorder = Recorder(lambda c: -((c["n"] - 7) ** 2))
    space = {"n": {"range": (0, 10), "type": int}}

    result = _tuner(space, recorder, budget=1000).tune(alpha=0.1, decay_rate=0.5)

    assert result.best_config == {"n": 7}
    assert len(recorder.calls) == recorder.distinct()
    # The start (5), both probes (6, 4), the walk to 7 and the step past it (8).
    assert sorted(call["n"] for call in recorder.calls) == [4, 5, 6, 7, 8]


def test_coordinate_descent_spends_whole_budget() -> None:
    recorder = Recorder(lambda c: -((c["x"] - 0.123456) ** 2))

    result = _tuner({"x": {"range": (0.0, 1.0)}}, recorder, budget=20).tune(
        alpha=0.3, decay_rate=0.9
    )

    assert result.total_cost == 20
    assert len(recorder.calls) == 20


@pytest.mark.parametrize("num_workers", [1, 8])
def test_coordinate_descent_probe_pair_budget(num_workers: int) -> None:
    recorder = Recorder(_separable)
    tuner = _tuner(UNIT_SQUARE, recorder, budget=2, num_workers=num_workers)

    result = tuner.tune(alpha=0.1, decay_rate=0.5)

    # The start takes one unit; the first probe pair then fits only one of its two points.
    assert result.total_cost == 2
    assert len(recorder.calls) == 2
    assert sum(trial.cost for trial in tuner.trials) == 2


@pytest.mark.parametrize("budget", [7, 30, 101])
def test_coordinate_descent_budget_cap_many_workers(budget: int) -> None:
    recorder = Recorder(_separable)
    space = {**UNIT_SQUARE, "kind": ["a", "b", "c"], "n": {"range": (1, 50), "type": int}}
    tuner = _tuner(space, recorder, budget=budget, num_workers=8)

    result = tuner.tune(alpha=0.05, decay_rate=0.9, seed=1)

    assert result.total_cost <= budget
    assert result.total_cost == sum(trial.cost for trial in tuner.trials)
    assert len(recorder.calls) == len(tuner.trials)


@pytest.mark.anyio
async def test_coordinate_descent_time_budget_stops(anyio_backend: str) -> None:
    async def slow(config: dict[str, Any]) -> float:
        await anyio.sleep(0.01)
        return _separable(config)

    tuner = _tuner(UNIT_SQUARE, slow, budget=10_000, time_budget=0.2)
    result = await tuner.tune_async(alpha=0.001, decay_rate=0.99)

    assert 1 <= result.total_cost < 10_000


@settings(max_examples=40, deadline=None)
@given(
    alpha=st.floats(min_value=0.01, max_value=1.0),
    decay_rate=st.floats(min_value=0.1, max_value=0.9),
    start_x=st.floats(min_value=0.0, max_value=1.0),
    start_n=st.integers(min_value=1, max_value=64),
    budget=st.integers(min_value=1, max_value=60),
    maximize=st.booleans(),
)
def test_coordinate_descent_bounds_property(
    alpha: float, decay_rate: float, start_x: float, start_n: int, budget: int, maximize: bool
) -> None:
    space = {
        "x": {"range": (0.0, 1.0)},
        "n": {"range": (1, 64), "type": int, "log": True},
        "kind": ["a", "b"],
    }
    recorder = Recorder(lambda c: math.sin(7 * c["x"]) + math.cos(c["n"]) + (c["kind"] == "b"))
    start = {"x": start_x, "n": start_n, "kind": "a"}
    tuner = _tuner(space, recorder, maximize=maximize, budget=budget, start_config=start)

    result = tuner.tune(alpha=alpha, decay_rate=decay_rate)

    assert all(0.0 <= call["x"] <= 1.0 for call in recorder.calls)
    assert all(1 <= call["n"] <= 64 for call in recorder.calls)
    assert recorder.distinct() == len(recorder.calls)
    assert result.total_cost <= budget
    assert result.total_cost == len(recorder.calls)


# Line-search geometry


def test_coordinate_descent_integer_step_multiples() -> None:
    recorder = Recorder(lambda c: c["x"])

    _tuner({"x": {"range": (0.0, 1.0)}}, recorder, budget=7).tune(alpha=0.1, decay_rate=0.5)

    # 0.5 + 3 * 0.1 is 0.8, while 0.5 + 0.1 + 0.1 + 0.1 is 0.7999999999999999.
    expected = [0.5, 0.5 + 0.1, 0.5 - 0.1, 0.5 + 2 * 0.1, 0.5 + 3 * 0.1, 0.5 + 4 * 0.1]
    expected.append(0.5 + 5 * 0.1)
    assert [call["x"] for call in recorder.calls] == expected


def test_coordinate_descent_takes_better_probe() -> None:
    # Both probes improve on 0.5, and 0.4 improves more.
    recorder = Recorder(lambda c: (c["x"] - 0.52) ** 2)

    _tuner({"x": {"range": (0.0, 1.0)}}, recorder, budget=4).tune(alpha=0.1, decay_rate=0.5)

    assert [call["x"] for call in recorder.calls] == [0.5, 0.6, 0.4, 0.5 - 2 * 0.1]


def test_coordinate_descent_line_search_budget() -> None:
    recorder = Recorder(lambda c: c["x"] + c["y"])

    _tuner(UNIT_SQUARE, recorder, budget=6).tune(alpha=0.05, decay_rate=0.5, line_search_budget=3)

    # Along x: two probes and one step, then the budget of 3 moves the search on to y.
    xs = [call["x"] for call in recorder.calls]
    ys = [call["y"] for call in recorder.calls]
    assert xs[:4] == [0.5, 0.55, 0.45, 0.5 + 2 * 0.05]
    assert ys[:4] == [0.5, 0.5, 0.5, 0.5]
    assert xs[4:] == [0.6, 0.6]
    assert ys[4:] == [0.55, 0.45]


@pytest.mark.parametrize(
    ("space", "start"),
    [
        pytest.param({"x": {"range": (0.0, 1.0)}}, {"x": 0.97}, id="float"),
        pytest.param({"x": {"range": (1e-3, 1.0), "log": True}}, {"x": 0.9}, id="log"),
        pytest.param({"x": {"range": (0, 20), "type": int}}, {"x": 19}, id="int"),
        pytest.param(
            {"x": {"range": (1, 1000), "type": int, "log": True}}, {"x": 999}, id="int-log"
        ),
    ],
)
def test_coordinate_descent_never_leaves_bounds(
    space: dict[str, Any], start: dict[str, Any]
) -> None:
    low, high = space["x"]["range"]
    recorder = Recorder(lambda c: c["x"])

    result = _tuner(space, recorder, budget=200, start_config=start).tune(alpha=0.2, decay_rate=0.5)

    assert all(low <= call["x"] <= high for call in recorder.calls)
    assert recorder.distinct() == len(recorder.calls)
    assert result.best_config is not None
    assert result.best_config["x"] == pytest.approx(high, rel=1e-2)


@pytest.mark.parametrize(
    ("param", "origin", "alpha", "expected"),
    [
        pytest.param(RangeParam("n", 0, 100, log=False, integer=True), 50, 0.1, [60, 40, 70, 30]),
        pytest.param(RangeParam("n", 0, 100, log=False, integer=True), 50, 0.001, [51, 49, 52, 48]),
        pytest.param(RangeParam("n", 0, 10, log=False, integer=True), 9, 0.1, [10, 8, None, 7]),
        pytest.param(
            RangeParam("n", 1, 10_000, log=True, integer=True), 100, 0.25, [1000, 10, 10_000, 1]
        ),
        pytest.param(
            RangeParam("n", 1, 10_000, log=True, integer=True), 100, 1e-4, [101, 99, 102, 98]
        ),
    ],
)
def test_line_point_integer_ranges(
    param: RangeParam, origin: int, alpha: float, expected: list[int | None]
) -> None:
    step = line_step(param, alpha)

    points = [line_point(param, origin, step, k) for k in (1, -1, 2, -2)]

    assert points == expected


def test_line_point_float_outside_is_none() -> None:
    param = RangeParam("x", 0.0, 1.0, log=False, integer=False)

    assert line_point(param, 0.95, 0.1, 1) is None
    assert line_point(param, 0.95, 0.1, -1) == pytest.approx(0.85)
    assert line_point(param, 0.0, 0.1, -1) is None


def test_step_can_shrink_by_kind() -> None:
    floats = RangeParam("x", 0.0, 1.0, log=False, integer=False)
    ints = RangeParam("n", 0, 100, log=False, integer=True)
    log_ints = RangeParam("n", 1, 10_000, log=True, integer=True)

    assert step_can_shrink(floats, 0.5, 1e-6)
    assert step_can_shrink(ints, 50, 2)
    assert not step_can_shrink(ints, 50, 1)
    assert step_can_shrink(log_ints, 100, line_step(log_ints, 0.25))
    assert not step_can_shrink(log_ints, 100, line_step(log_ints, 1e-4))


# Start point


def test_coordinate_descent_average_start() -> None:
    recorder = Recorder(lambda c: 0.0)
    space = {
        "x": {"range": (2.0, 4.0)},
        "lr": {"range": (1e-4, 1.0), "log": True},
        "n": {"range": (1, 4), "type": int},
        "kind": ["b", "a"],
    }

    _tuner(space, recorder, budget=1).tune(alpha=0.1, decay_rate=0.5)

    first = recorder.calls[0]
    assert first["x"] == pytest.approx(3.0)
    assert first["lr"] == pytest.approx(1e-2)
    assert first["n"] == 3  # 2.5 rounded half up
    assert first["kind"] == "b"


def test_coordinate_descent_random_start_uses_seed() -> None:
    first_calls = []
    for _ in range(2):
        recorder = Recorder(_separable)
        _tuner(UNIT_SQUARE, recorder, budget=5).tune(
            alpha=0.1, decay_rate=0.5, init_method="random", seed=42
        )
        first_calls.append(recorder.calls[0])

    other = Recorder(_separable)
    _tuner(UNIT_SQUARE, other, budget=5).tune(
        alpha=0.1, decay_rate=0.5, init_method="random", seed=43
    )

    assert first_calls[0] == first_calls[1]
    assert first_calls[0] != {"x": 0.5, "y": 0.5}
    assert other.calls[0] != first_calls[0]


@pytest.mark.parametrize("init_method", ["average", "random"])
def test_coordinate_descent_start_config_untouched(init_method: str) -> None:
    start = {"x": 0.9, "y": 0.1, "kind": "a"}
    original = copy.deepcopy(start)
    recorder = Recorder(_separable)
    space = {**UNIT_SQUARE, "kind": ["a", "b"]}

    _tuner(space, recorder, budget=50, start_config=start).tune(
        alpha=0.1, decay_rate=0.5, init_method=init_method
    )

    assert start == original
    assert recorder.calls[0] == original


def test_coordinate_descent_start_score_not_evaluated() -> None:
    start = {"x": 0.9, "y": 0.1}
    recorder = Recorder(_separable)
    tuner = _tuner(UNIT_SQUARE, recorder, budget=40, start_config=start, start_score=-1.0)

    tuner.tune(alpha=0.1, decay_rate=0.5)

    assert config_key(start) not in {config_key(call) for call in recorder.calls}
    # The first probe pair moves x from the start, holding y.
    assert recorder.calls[0] == {"x": 0.9 + 0.1, "y": 0.1}
    assert recorder.calls[1] == {"x": 0.9 - 0.1, "y": 0.1}


# Order, failures, logs


def test_coordinate_descent_shuffled_order() -> None:
    space = {name: {"range": (0.0, 1.0)} for name in "abcd"}

    def first_coordinate(seed: int, randomize: bool) -> tuple[str, list[dict[str, Any]]]:
        recorder = Recorder(lambda c: -sum((value - 0.25) ** 2 for value in c.values()))
        _tuner(space, recorder, budget=12).tune(
            alpha=0.1, decay_rate=0.5, randomize_param_order=randomize, seed=seed
        )
        start, probe = recorder.calls[0], recorder.calls[1]
        changed = [name for name in space if probe[name] != start[name]]
        return changed[0], recorder.calls

    fixed = {first_coordinate(seed, False)[0] for seed in range(10)}
    shuffled = {first_coordinate(seed, True)[0] for seed in range(10)}

    assert fixed == {"a"}
    assert len(shuffled) > 1
    assert first_coordinate(5, True) == first_coordinate(5, True)


def test_coordinate_descent_failed_trials_rank_worst() -> None:
    def score(config: dict[str, Any]) -> float:
        if config["x"] > 0.62:
            msg = "unstable above 0.62"
            raise ValueError(msg)
        return float(config["x"])

    tuner = _tuner({"x": {"range": (0.0, 1.0)}}, score, budget=200)

    result = tuner.tune(alpha=0.1, decay_rate=0.5)

    assert result.best_config is not None
    assert 0.6 <= result.best_config["x"] <= 0.62
    assert any(trial.status is TrialStatus.FAILED for trial in tuner.trials)
    keys = [config_key(trial.config) for trial in tuner.trials]
    assert len(set(keys)) == len(keys)


def test_coordinate_descent_logs_moves_and_decays(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="async_tuner.strategies._coordinate_descent")

    _tuner({"x": {"range": (0.0, 1.0)}}, lambda c: -abs(c["x"] - 0.33), budget=40).tune(
        alpha=0.1, decay_rate=0.5
    )

    messages = [
        record.getMessage()
        for record in caplog.records
        if record.name == "async_tuner.strategies._coordinate_descent"
    ]
    assert any("coordinate x moves from 0.5 to 0.3" in message for message in messages)
    assert any("alpha decays to 0.05" in message for message in messages)


# Options


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        pytest.param({"decay_rate": 0.5}, TypeError, "alpha", id="missing-alpha"),
        pytest.param({"alpha": 0.5}, TypeError, "decay_rate", id="missing-decay"),
        pytest.param(
            {"alpha": 0, "decay_rate": 0.5},
            ValueError,
            r"alpha must be in \(0, 1\] \(got 0\)",
            id="alpha-0",
        ),
        pytest.param(
            {"alpha": 1.5, "decay_rate": 0.5},
            ValueError,
            r"alpha must be .* \(got 1.5\)",
            id="alpha-big",
        ),
        pytest.param(
            {"alpha": "0.1", "decay_rate": 0.5}, TypeError, "alpha must be a real", id="alpha-str"
        ),
        pytest.param(
            {"alpha": 0.1, "decay_rate": 1},
            ValueError,
            r"decay_rate must be in \(0, 1\) \(got 1\)",
            id="decay-1",
        ),
        pytest.param(
            {"alpha": 0.1, "decay_rate": 0.5, "init_method": "middle"},
            ValueError,
            "init_method must be 'average' or 'random' \\(got 'middle'\\)",
            id="init-method",
        ),
        pytest.param(
            {"alpha": 0.1, "decay_rate": 0.5, "line_search_budget": 1},
            ValueError,
            r"line_search_budget must be an integer >= 2 \(got 1\)",
            id="budget-1",
        ),
        pytest.param(
            {"alpha": 0.1, "decay_rate": 0.5, "line_search_budget": 2.5},
            TypeError,
            "line_search_budget must be an integer",
            id="budget-float",
        ),
        pytest.param(
            {"alpha": 0.1, "decay_rate": 0.5, "randomize_param_order": "yes"},
            TypeError,
            "randomize_param_order must be True or False",
            id="order-str",
        ),
    ],
)
def test_coordinate_descent_invalid_options(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    recorder = Recorder(_separable)

    with pytest.raises(error, match=match):
        _tuner(UNIT_SQUARE, recorder, budget=10).tune(**options)

    assert recorder.calls == []
