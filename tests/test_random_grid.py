"""Tests of RandomTuner and GridTuner: generated configurations, seeding, value types, grids."""

from __future__ import annotations

import itertools
import math
import random
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from async_tuner import GridTuner, RandomTuner

SPACE = {
    "kind": ["a", "b", "c"],
    "x": {"range": (-2.0, 3.0)},
    "n": {"range": (1, 6), "type": int},
    "rate": {"range": (1e-4, 1e-1), "log": True},
}
ALL_KINDS = {
    "count": [1, 2, 3],
    "x": {"range": (0.0, 1.0)},
    "n": {"range": (1, 5), "type": int},
    "rate": {"range": (1e-3, 1.0), "log": True},
    "name": ["a", "b"],
    "flag": [True, False],
}
ALL_KINDS_TYPES = {"count": int, "x": float, "n": int, "rate": float, "name": str, "flag": bool}
NUMPY_CHOICES = {
    "count": [np.int64(1), np.int32(2)],
    "weight": [np.float64(0.5), np.float32(0.25)],
    "name": [np.str_("a"), np.str_("b")],
    "flag": [np.bool_(True), np.bool_(False)],
    "x": {"range": (np.float64(0.0), np.float64(1.0))},
    "n": {"range": (np.int64(1), np.int64(4)), "type": int},
}
NUMPY_CHOICES_TYPES = {
    "count": int,
    "weight": float,
    "name": str,
    "flag": bool,
    "x": float,
    "n": int,
}
TYPED_SPACES = [
    pytest.param(ALL_KINDS, ALL_KINDS_TYPES, id="python-values"),
    pytest.param(NUMPY_CHOICES, NUMPY_CHOICES_TYPES, id="numpy-values"),
]


class Recorder:
    """A thread-safe eval_fn that records the configs it gets and scores with ``score``."""

    def __init__(self, score: Callable[[dict[str, Any]], float] = lambda config: 0.0) -> None:
        self.score = score
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, config: dict[str, Any]) -> float:
        with self._lock:
            self.calls.append(dict(config))
        return self.score(config)


def _check_in_space(config: dict[str, Any]) -> None:
    assert config["kind"] in SPACE["kind"]
    assert -2.0 <= config["x"] <= 3.0
    assert 1 <= config["n"] <= 6
    assert 1e-4 <= config["rate"] <= 1e-1


# RandomTuner.generate_configs


def test_random_generate_configs_list_of_dicts() -> None:
    configs = RandomTuner.generate_configs(SPACE, 7, seed=1)

    assert isinstance(configs, list)
    assert len(configs) == 7
    for config in configs:
        assert type(config) is dict
        assert list(config) == list(SPACE)
        _check_in_space(config)


def test_random_generate_configs_seed_reproducible() -> None:
    first = RandomTuner.generate_configs(SPACE, 10, seed=42)
    second = RandomTuner.generate_configs(SPACE, 10, seed=42)
    other_seed = RandomTuner.generate_configs(SPACE, 10, seed=43)

    assert first == second
    assert first != other_seed


def test_random_generate_configs_independent_of_global_state() -> None:
    random.seed(1)
    after_seed_1 = RandomTuner.generate_configs(SPACE, 5, seed=9)
    random.seed(2)
    after_seed_2 = RandomTuner.generate_configs(SPACE, 5, seed=9)

    assert after_seed_1 == after_seed_2


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(lambda: RandomTuner.generate_configs(SPACE, 5, seed=3), id="random-seeded"),
        pytest.param(lambda: RandomTuner.generate_configs(SPACE, 5), id="random-unseeded"),
        pytest.param(lambda: GridTuner.generate_configs(SPACE, 20), id="grid"),
        pytest.param(
            lambda: RandomTuner(SPACE, Recorder(), budget=5, show_loading=False).tune(seed=3),
            id="tune-seeded",
        ),
        pytest.param(
            lambda: RandomTuner(SPACE, Recorder(), budget=5, show_loading=False).tune(),
            id="tune-unseeded",
        ),
        pytest.param(
            lambda: RandomTuner(
                SPACE, Recorder(), budget=5, num_workers=3, show_loading=False
            ).tune(seed=3),
            id="tune-pool",
        ),
    ],
)
def test_random_global_state_untouched(action: Callable[[], Any]) -> None:
    random.seed(1234)
    state = random.getstate()

    action()

    assert random.getstate() == state


# RandomTuner runs


@pytest.mark.parametrize("num_workers", [pytest.param(n, id=f"{n}-workers") for n in (1, 8)])
def test_random_evaluates_generated_configs(num_workers: int) -> None:
    expected = RandomTuner.generate_configs(SPACE, 12, seed=5)
    recorder = Recorder()

    tuner = RandomTuner(SPACE, recorder, budget=12, num_workers=num_workers, show_loading=False)
    tuner.tune(seed=5)

    assert [trial.config for trial in tuner.trials] == expected
    assert sorted(map(repr, recorder.calls)) == sorted(map(repr, expected))


@pytest.mark.anyio
async def test_random_evaluates_generated_configs_async() -> None:
    expected = RandomTuner.generate_configs(SPACE, 12, seed=5)
    calls: list[dict[str, Any]] = []

    async def record(config: dict[str, Any]) -> float:
        calls.append(config)
        await anyio.lowlevel.checkpoint()
        return 0.0

    tuner = RandomTuner(SPACE, record, budget=12, num_workers=4, show_loading=False)
    await tuner.tune_async(seed=5)

    assert [trial.config for trial in tuner.trials] == expected
    assert sorted(map(repr, calls)) == sorted(map(repr, expected))


def test_random_start_config_evaluated_first() -> None:
    start = {"kind": "b", "x": 0.5, "n": 3, "rate": 0.01}
    draws = RandomTuner.generate_configs(SPACE, 5, seed=6)

    tuner = RandomTuner(SPACE, Recorder(), budget=6, start_config=start, show_loading=False)
    tuner.tune(seed=6)

    assert tuner.trials[0].config == start
    assert [trial.config for trial in tuner.trials[1:]] == draws


def test_random_start_score_not_evaluated_again() -> None:
    start = {"kind": "b", "x": 0.5, "n": 3, "rate": 0.01}
    draws = RandomTuner.generate_configs(SPACE, 4, seed=7)
    recorder = Recorder(lambda config: config["x"])

    tuner = RandomTuner(
        SPACE, recorder, budget=4, start_config=start, start_score=100.0, show_loading=False
    )
    result = tuner.tune(seed=7)

    assert [trial.config for trial in tuner.trials] == draws
    assert result.best_score == 100.0
    assert result.best_config == start


@pytest.mark.parametrize(("space", "types"), TYPED_SPACES)
def test_random_values_plain_python_types(space: dict[str, Any], types: dict[str, type]) -> None:
    recorder = Recorder()

    result = RandomTuner(space, recorder, budget=10, show_loading=False).tune(seed=8)

    for config in recorder.calls:
        assert {name: type(value) for name, value in config.items()} == types
    assert result.best_config is not None
    assert {name: type(value) for name, value in result.best_config.items()} == types


@pytest.mark.parametrize(("space", "types"), TYPED_SPACES)
def test_random_generate_configs_plain_types(space: dict[str, Any], types: dict[str, type]) -> None:
    for config in RandomTuner.generate_configs(space, 10, seed=9):
        assert {name: type(value) for name, value in config.items()} == types


@pytest.mark.parametrize(("space", "types"), TYPED_SPACES)
def test_grid_values_plain_python_types(space: dict[str, Any], types: dict[str, type]) -> None:
    recorder = Recorder()

    GridTuner(space, recorder, budget=40, show_loading=False).tune()

    assert recorder.calls
    for config in recorder.calls:
        assert {name: type(value) for name, value in config.items()} == types


def test_random_numpy_score_becomes_float() -> None:
    tuner = RandomTuner(SPACE, lambda config: np.float32(config["n"]), budget=4, show_loading=False)
    result = tuner.tune(seed=10)

    assert all(type(score) is float for score in result.score_history)
    assert type(result.best_score) is float


def test_random_log_range_spread_in_log_space() -> None:
    # Half of a log-uniform sample of (1e-4, 1) lies below 1e-2, the geometric midpoint.
    configs = RandomTuner.generate_configs({"rate": {"range": (1e-4, 1.0), "log": True}}, 400, 11)
    below = sum(config["rate"] < 1e-2 for config in configs)

    assert 140 <= below <= 260


# GridTuner layouts


def test_grid_generate_configs_list_of_dicts() -> None:
    configs = GridTuner.generate_configs(SPACE, 24)

    assert isinstance(configs, list)
    assert 1 <= len(configs) <= 24
    for config in configs:
        assert type(config) is dict
        assert list(config) == list(SPACE)
        _check_in_space(config)


def _turn_levels(fixed: int, ranges: int, budget: int) -> list[int]:
    """Return the points per float range when the ranges gain one point each in turn.

    ``fixed`` is the product of the discrete parameters' choice counts.
    """
    levels = [1] * ranges
    grew = True
    while grew:
        grew = False
        for index in range(ranges):
            others = fixed * math.prod(levels) // levels[index]
            if others * (levels[index] + 1) <= budget:
                levels[index] += 1
                grew = True
    return levels


def _interior(low: float, high: float, count: int) -> list[float]:
    return [low + k * (high - low) / (count + 1) for k in range(1, count + 1)]


def _check_layout(configs: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(configs) == len(expected)
    assert [list(config) for config in configs] == [list(config) for config in expected]
    for name in expected[0]:
        column = [config[name] for config in configs]
        expected_column = [config[name] for config in expected]
        if isinstance(expected_column[0], float):
            assert column == pytest.approx(expected_column, rel=1e-12)
        else:
            assert column == expected_column


def _product(axes: dict[str, list[Any]], budget: int | None = None) -> list[dict[str, Any]]:
    combinations = itertools.islice(itertools.product(*axes.values()), budget)
    return [dict(zip(axes, values, strict=True)) for values in combinations]


@pytest.mark.parametrize("budget", [1, 2, 6, 13])
def test_grid_one_float_range(budget: int) -> None:
    expected = [{"x": value} for value in _interior(2.0, 5.0, budget)]

    _check_layout(GridTuner.generate_configs({"x": {"range": (2.0, 5.0)}}, budget), expected)


@pytest.mark.parametrize("budget", [4, 20, 50, 99])
def test_grid_two_float_ranges(budget: int) -> None:
    space = {"x": {"range": (0.0, 1.0)}, "y": {"range": (-3.0, 3.0)}}
    x_count, y_count = _turn_levels(1, 2, budget)
    expected = _product({"x": _interior(0.0, 1.0, x_count), "y": _interior(-3.0, 3.0, y_count)})

    _check_layout(GridTuner.generate_configs(space, budget), expected)


def test_grid_two_ranges_uneven_split() -> None:
    space = {"x": {"range": (0.0, 1.0)}, "y": {"range": (0.0, 1.0)}}

    configs = GridTuner.generate_configs(space, 20)

    assert len({config["x"] for config in configs}) == 5
    assert len({config["y"] for config in configs}) == 4


@pytest.mark.parametrize("budget", [3, 10, 50, 51])
def test_grid_choices_and_ranges(budget: int) -> None:
    space = {"kind": ["a", "b"], "x": {"range": (0.0, 1.0)}, "y": {"range": (10.0, 20.0)}}
    x_count, y_count = _turn_levels(2, 2, budget)
    axes = {
        "kind": ["a", "b"],
        "x": _interior(0.0, 1.0, x_count),
        "y": _interior(10.0, 20.0, y_count),
    }

    _check_layout(GridTuner.generate_configs(space, budget), _product(axes))


def test_grid_log_range_geometric_points() -> None:
    space = {"rate": {"range": (1.0, 10_000.0), "log": True}}
    # In log10 space the interior points of (0, 4) at n = 3 are 1, 2 and 3.
    expected = [{"rate": 10.0**exponent} for exponent in (1, 2, 3)]

    _check_layout(GridTuner.generate_configs(space, 3), expected)


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        # low + round_half_up(k * (high - low) / (n + 1)) for k = 1..n
        pytest.param(1, [5], id="budget-1"),
        pytest.param(3, [math.floor(10 * k / 4 + 0.5) for k in (1, 2, 3)], id="budget-3"),
        pytest.param(9, list(range(1, 10)), id="all-interior"),
        pytest.param(10, list(range(0, 10)), id="interior-and-low"),
        pytest.param(11, list(range(0, 11)), id="every-integer"),
        pytest.param(50, list(range(0, 11)), id="budget-above-integers"),
    ],
)
def test_grid_int_range(budget: int, expected: list[int]) -> None:
    configs = GridTuner.generate_configs({"n": {"range": (0, 10), "type": int}}, budget)

    assert [config["n"] for config in configs] == expected
    assert all(type(config["n"]) is int for config in configs)


def test_grid_int_range_with_float_range_shares_budget() -> None:
    space = {"n": {"range": (1, 3), "type": int}, "x": {"range": (0.0, 1.0)}}
    # n gains its one interior integer (2), then its bounds, and stops at 3 values; x takes
    # the rest: 3 * 4 = 12 <= 13.
    expected = _product({"n": [1, 2, 3], "x": _interior(0.0, 1.0, 4)})

    _check_layout(GridTuner.generate_configs(space, 13), expected)


# GridTuner runs and the original's grid bugs


@pytest.mark.parametrize("budget", [2, 6, 100])
def test_grid_discrete_only_terminates(budget: int) -> None:
    space = {"a": [1, 2], "b": ["x", "y", "z"]}
    expected = _product({"a": [1, 2], "b": ["x", "y", "z"]}, budget)
    recorder = Recorder()

    result = GridTuner(space, recorder, budget=budget, show_loading=False).tune()

    assert recorder.calls == expected
    assert result.total_cost == min(budget, 6)


def test_grid_huge_discrete_space_small_budget() -> None:
    space = {f"p{index}": list(range(10)) for index in range(10)}  # 10**10 configurations
    expected = [{**{f"p{index}": 0 for index in range(9)}, "p9": last} for last in range(5)]
    recorder = Recorder()

    result = GridTuner(space, recorder, budget=5, show_loading=False).tune()

    assert recorder.calls == expected
    assert result.total_cost == 5


def test_grid_huge_space_with_range_small_budget() -> None:
    space = {**{f"p{index}": list(range(10)) for index in range(10)}, "x": {"range": (0.0, 2.0)}}
    configs = GridTuner.generate_configs(space, 5)

    assert len(configs) == 5
    assert {config["x"] for config in configs} == {1.0}


@pytest.mark.parametrize("num_workers", [pytest.param(n, id=f"{n}-workers") for n in (1, 4)])
@pytest.mark.parametrize("budget", [1, 7, 7.5, 20])
def test_grid_budget_never_exceeded(num_workers: int, budget: float) -> None:
    recorder = Recorder()

    result = GridTuner(
        SPACE, recorder, budget=budget, num_workers=num_workers, show_loading=False
    ).tune()

    assert len(recorder.calls) <= budget
    assert result.total_cost == len(recorder.calls)


def test_grid_evaluates_generated_configs_in_order() -> None:
    expected = GridTuner.generate_configs(SPACE, 30)

    tuner = GridTuner(SPACE, Recorder(), budget=30, num_workers=4, show_loading=False)
    tuner.tune()

    assert [trial.config for trial in tuner.trials] == expected


# GridTuner properties

_float_ranges = st.tuples(
    st.floats(-1e6, 1e6, allow_nan=False), st.floats(1e-3, 1e6, allow_nan=False)
).map(lambda pair: {"range": (pair[0], pair[0] + pair[1])})
_int_ranges = st.tuples(st.integers(-50, 50), st.integers(1, 30)).map(
    lambda pair: {"range": (pair[0], pair[0] + pair[1]), "type": int}
)
_log_ranges = st.tuples(st.floats(1e-6, 1e3), st.floats(1.01, 1e4)).map(
    lambda pair: {"range": (pair[0], pair[0] * pair[1]), "log": True}
)
_choices = st.lists(st.integers(0, 5), min_size=1, max_size=4)
_params = st.one_of(_float_ranges, _int_ranges, _log_ranges, _choices)
_spaces = st.lists(_params, min_size=1, max_size=4).map(
    lambda params: {f"p{index}": param for index, param in enumerate(params)}
)


def _inside(value: Any, param: Any) -> bool:
    if isinstance(param, list):
        return value in param
    low, high = param["range"]
    if param.get("type") is int:
        return low <= value <= high
    return low < value < high


@settings(max_examples=60, deadline=None, database=None)
@given(space=_spaces, budget=st.integers(1, 300))
def test_grid_property_budget_and_bounds(space: dict[str, Any], budget: int) -> None:
    configs = GridTuner.generate_configs(space, budget)

    assert 1 <= len(configs) <= budget
    assert len({tuple(sorted(config.items())) for config in configs}) == len(configs)
    for config in configs:
        for name, value in config.items():
            assert _inside(value, space[name])


@settings(max_examples=30, deadline=None, database=None)
@given(choices=st.lists(st.integers(1, 4), min_size=1, max_size=4), budget=st.integers(1, 100))
def test_grid_property_discrete_covers_product(choices: list[int], budget: int) -> None:
    space = {f"p{index}": list(range(count)) for index, count in enumerate(choices)}

    configs = GridTuner.generate_configs(space, budget)

    assert len(configs) == min(budget, math.prod(choices))
