"""Tests for search space validation, sampling, grids and config keys."""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from async_tuner._space import (
    ChoiceParam,
    RangeParam,
    SearchSpace,
    config_key,
)
from async_tuner._types import SearchSpaceError

# Helpers that compute expected values without the module under test.


def linear_points(low: float, high: float, count: int) -> list[float]:
    return [low + k * (high - low) / (count + 1) for k in range(1, count + 1)]


def log_points(low: float, high: float, count: int) -> list[float]:
    step = (math.log(high) - math.log(low)) / (count + 1)
    return [math.exp(math.log(low) + k * step) for k in range(1, count + 1)]


def int_axis(low: int, high: int, count: int) -> list[int]:
    """Return the linear int grid axis by the rule: rounded interior points, then the bounds."""
    interior = list(range(low + 1, high))
    if count == len(interior) + 1:
        return [low, *interior]
    if count > len(interior) + 1:
        return [low, *interior, high]

    half = Fraction(1, 2)
    return [
        low + math.floor(Fraction(k * (high - low), count + 1) + half) for k in range(1, count + 1)
    ]


def column(configs: list[dict[str, Any]], name: str) -> list[Any]:
    """Return the distinct values of one parameter in first-seen order."""
    values: list[Any] = []
    for config in configs:
        if config[name] not in values:
            values.append(config[name])
    return values


def assert_value_in_param(value: Any, param: ChoiceParam | RangeParam) -> None:
    if isinstance(param, ChoiceParam):
        assert any(value is choice for choice in param.choices)
        return

    if param.integer:
        assert type(value) is int
    else:
        assert type(value) is float
    assert param.low <= value <= param.high


# from_dict


def test_from_dict_params_in_order() -> None:
    space = SearchSpace.from_dict(
        {
            "opt": ["adam", "sgd"],
            "lr": {"range": (1e-4, 1e-1), "log": True},
            "layers": {"range": (1, 8), "type": int},
        }
    )

    assert space.params == (
        ChoiceParam("opt", ("adam", "sgd")),
        RangeParam("lr", 1e-4, 1e-1, log=True, integer=False),
        RangeParam("layers", 1, 8, log=False, integer=True),
    )


@pytest.mark.parametrize(
    ("type_", "integer"),
    [(int, True), ("int", True), (float, False), ("float", False)],
    ids=["int-class", "int-string", "float-class", "float-string"],
)
def test_from_dict_type_spellings(type_: Any, integer: bool) -> None:
    space = SearchSpace.from_dict({"x": {"range": (0, 10), "type": type_}})

    param = space.params[0]
    assert isinstance(param, RangeParam)
    assert param.integer is integer


def test_from_dict_float_range_bounds_become_floats() -> None:
    param = SearchSpace.from_dict({"x": {"range": (0, 10)}}).params[0]

    assert isinstance(param, RangeParam)
    assert type(param.low) is float
    assert type(param.high) is float


def test_from_dict_int_range_integral_floats() -> None:
    param = SearchSpace.from_dict({"n": {"range": [2.0, 6.0], "type": "int"}}).params[0]

    assert isinstance(param, RangeParam)
    assert type(param.low) is int
    assert param.low == 2
    assert type(param.high) is int
    assert param.high == 6


def test_from_dict_numpy_values_become_plain() -> None:
    space = SearchSpace.from_dict(
        {
            "c": [np.int64(3), np.float32(0.5), np.bool_(True), np.str_("a")],
            "x": {"range": (np.float32(0.25), np.float64(2.0)), "log": np.bool_(True)},
            "n": {"range": (np.int32(1), np.int64(9)), "type": int},
        }
    )

    choice, float_range, int_range = space.params
    assert isinstance(choice, ChoiceParam)
    assert [type(value) for value in choice.choices] == [int, float, bool, str]
    assert choice.choices == (3, 0.5, True, "a")
    assert isinstance(float_range, RangeParam)
    assert type(float_range.low) is float
    assert type(float_range.high) is float
    assert float_range.log is True
    assert isinstance(int_range, RangeParam)
    assert type(int_range.low) is int
    assert type(int_range.high) is int


def test_from_dict_fraction_bounds_accepted() -> None:
    param = SearchSpace.from_dict({"x": {"range": (Fraction(1, 4), Fraction(3, 4))}}).params[0]

    assert param == RangeParam("x", 0.25, 0.75, log=False, integer=False)


def test_from_dict_non_mapping_type_error() -> None:
    with pytest.raises(TypeError) as excinfo:
        SearchSpace.from_dict([("x", [1, 2])])  # type: ignore[arg-type]

    assert str(excinfo.value) == (
        "search space must be a mapping from parameter names to choices or ranges "
        "(got [('x', [1, 2])] of type list)"
    )


PREFIX_LR = "search space parameter 'lr': "
PREFIX_N = "search space parameter 'n': "
PREFIX_X = "search space parameter 'x': "

INVALID_SPACES = [
    pytest.param({}, "search space must contain at least one parameter (got {})", id="empty-space"),
    pytest.param(
        {3: [1, 2]},
        "search space parameter names must be strings (got 3 of type int)",
        id="name-not-str",
    ),
    pytest.param(
        {"x": 5},
        PREFIX_X + "value must be a list or tuple of choices, or a dict with a 'range' key "
        "(got 5 of type int)",
        id="value-int",
    ),
    pytest.param(
        {"x": "abc"},
        PREFIX_X + "value must be a list or tuple of choices, or a dict with a 'range' key "
        "(got 'abc' of type str)",
        id="value-str",
    ),
    pytest.param(
        {"x": {1, 2}},
        PREFIX_X + "value must be a list or tuple of choices, or a dict with a 'range' key "
        "(got {1, 2} of type set)",
        id="value-set",
    ),
    pytest.param(
        {"x": []}, PREFIX_X + "choices must not be empty (got [])", id="choices-empty-list"
    ),
    pytest.param(
        {"x": ()}, PREFIX_X + "choices must not be empty (got ())", id="choices-empty-tuple"
    ),
    pytest.param(
        {"lr": {"ragne": (0, 1)}},
        PREFIX_LR + "keys must be among 'range', 'log', 'type' (got unknown 'ragne')",
        id="key-typo",
    ),
    pytest.param(
        {"lr": {"range": (0, 1), "step": 0.1, 3: 4}},
        PREFIX_LR + "keys must be among 'range', 'log', 'type' (got unknown 'step', 3)",
        id="keys-unknown-two",
    ),
    pytest.param(
        {"lr": {"log": True}},
        PREFIX_LR + "a dict parameter must have a 'range' key (got keys ['log'])",
        id="range-missing",
    ),
    pytest.param(
        {"lr": {"range": 5}},
        PREFIX_LR + "range must be a list or tuple (low, high) (got 5 of type int)",
        id="range-not-sequence",
    ),
    pytest.param(
        {"lr": {"range": (0, 1, 2)}},
        PREFIX_LR + "range must have exactly two bounds (low, high) (got (0, 1, 2))",
        id="range-three-bounds",
    ),
    pytest.param(
        {"lr": {"range": [0.1]}},
        PREFIX_LR + "range must have exactly two bounds (low, high) (got [0.1])",
        id="range-one-bound",
    ),
    pytest.param(
        {"lr": {"range": (False, True)}},
        PREFIX_LR + "range bounds must be numbers, not bools (got (False, True))",
        id="bounds-bool",
    ),
    pytest.param(
        {"lr": {"range": ("0", 1)}},
        PREFIX_LR + "range bounds must be real numbers (got ('0', 1) of types str and int)",
        id="bounds-str",
    ),
    pytest.param(
        {"lr": {"range": (0, 1j)}},
        PREFIX_LR + "range bounds must be real numbers (got (0, 1j) of types int and complex)",
        id="bounds-complex",
    ),
    pytest.param(
        {"lr": {"range": (math.nan, 1.0)}},
        PREFIX_LR + "range bounds must be finite and fit in a float (got (nan, 1.0))",
        id="bounds-nan",
    ),
    pytest.param(
        {"lr": {"range": (0.0, math.inf)}},
        PREFIX_LR + "range bounds must be finite and fit in a float (got (0.0, inf))",
        id="bounds-inf",
    ),
    pytest.param(
        {"lr": {"range": (0.5, 0.1)}},
        PREFIX_LR + "range bounds must satisfy low < high (got (0.5, 0.1))",
        id="bounds-reversed",
    ),
    pytest.param(
        {"lr": {"range": [1, 1]}},
        PREFIX_LR + "range bounds must satisfy low < high (got [1, 1])",
        id="bounds-equal",
    ),
    pytest.param(
        {"lr": {"range": (1.0, math.nextafter(1.0, 2.0))}},
        PREFIX_LR + "range bounds must leave a float strictly between them "
        "(got (1.0, 1.0000000000000002))",
        id="bounds-adjacent-floats",
    ),
    pytest.param(
        {"lr": {"range": (0.0, 1.0), "log": True}},
        PREFIX_LR + "bounds of a log range must be positive (got (0.0, 1.0))",
        id="log-low-zero",
    ),
    pytest.param(
        {"lr": {"range": (-1, 1), "log": True}},
        PREFIX_LR + "bounds of a log range must be positive (got (-1, 1))",
        id="log-low-negative",
    ),
    pytest.param(
        {"lr": {"range": (0.1, 1), "log": "yes"}},
        PREFIX_LR + "log must be True or False (got 'yes' of type str)",
        id="log-str",
    ),
    pytest.param(
        {"lr": {"range": (0.1, 1), "log": 1}},
        PREFIX_LR + "log must be True or False (got 1 of type int)",
        id="log-int",
    ),
    pytest.param(
        {"n": {"range": (0, 10), "type": "integer"}},
        PREFIX_N + "type must be int, 'int', float or 'float' (got 'integer' of type str)",
        id="type-unknown-str",
    ),
    pytest.param(
        {"n": {"range": (0, 10), "type": str}},
        PREFIX_N + "type must be int, 'int', float or 'float' (got <class 'str'> of type type)",
        id="type-str-class",
    ),
    pytest.param(
        {"n": {"range": (0.5, 3), "type": int}},
        PREFIX_N + "bounds of an int range must be integers (got (0.5, 3))",
        id="int-bounds-fractional",
    ),
    pytest.param(
        {"n": {"range": (0, 1), "type": int, "log": True}},
        PREFIX_N + "bounds of a log range must be positive (got (0, 1))",
        id="log-int-low-zero",
    ),
]


@pytest.mark.parametrize(("search_space", "message"), INVALID_SPACES)
def test_from_dict_invalid_space(search_space: dict[Any, Any], message: str) -> None:
    with pytest.raises(SearchSpaceError) as excinfo:
        SearchSpace.from_dict(search_space)

    assert str(excinfo.value) == message


def test_from_dict_int_bound_too_large_for_float() -> None:
    with pytest.raises(SearchSpaceError) as excinfo:
        SearchSpace.from_dict({"n": {"range": (0, 10**400), "type": int}})

    assert str(excinfo.value).startswith(
        PREFIX_N + "range bounds must be finite and fit in a float (got (0, 1000"
    )


def test_search_space_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="low < high"):
        SearchSpace.from_dict({"x": {"range": (2, 1)}})


# sample


MIXED_SPACE: dict[str, Any] = {
    "opt": ["adam", "sgd", "rmsprop"],
    "lr": {"range": (1e-5, 1.0), "log": True},
    "dropout": {"range": (0.0, 0.5)},
    "layers": {"range": (1, 6), "type": int},
    "width": {"range": (8, 1024), "type": "int", "log": True},
}


def test_sample_seeded_reproducible() -> None:
    space = SearchSpace.from_dict(MIXED_SPACE)

    first = [space.sample(random.Random(42)) for _ in range(3)]
    rng_a, rng_b = random.Random(7), random.Random(7)
    run_a = [space.sample(rng_a) for _ in range(50)]
    run_b = [space.sample(rng_b) for _ in range(50)]

    assert first[0] == first[1] == first[2]
    assert run_a == run_b
    assert len({config_key(config) for config in run_a}) > 1


def test_sample_leaves_global_random_state() -> None:
    space = SearchSpace.from_dict(MIXED_SPACE)
    state = random.getstate()

    rng = random.Random(0)
    for _ in range(100):
        space.sample(rng)

    assert random.getstate() == state


def test_sample_values_inside_space_with_plain_types() -> None:
    space = SearchSpace.from_dict(MIXED_SPACE)
    rng = random.Random(3)

    for _ in range(500):
        config = space.sample(rng)
        assert list(config) == list(MIXED_SPACE)
        for param in space.params:
            assert_value_in_param(config[param.name], param)


def test_sample_int_range_reaches_both_bounds() -> None:
    space = SearchSpace.from_dict(
        {"n": {"range": (0, 3), "type": int}, "m": {"range": (1, 4), "type": int, "log": True}}
    )
    rng = random.Random(11)

    configs = [space.sample(rng) for _ in range(2000)]

    assert {config["n"] for config in configs} == {0, 1, 2, 3}
    assert {config["m"] for config in configs} == {1, 2, 3, 4}


def test_sample_log_range_median_is_geometric_mean() -> None:
    space = SearchSpace.from_dict({"lr": {"range": (1e-6, 1.0), "log": True}})
    rng = random.Random(5)
    draws = 4000

    below = sum(space.sample(rng)["lr"] < 1e-3 for _ in range(draws))

    # Log-uniform puts half the mass below the geometric mean 1e-3, but a linear draw would put
    # about 0.1 % there. With 4000 draws the fraction has a standard deviation of about 0.8 %.
    assert 0.45 < below / draws < 0.55


def test_sample_choice_is_the_object_itself() -> None:
    choice = {"hidden": [64, 64]}
    space = SearchSpace.from_dict({"arch": [choice]})

    assert space.sample(random.Random(0))["arch"] is choice


# grid


def test_grid_float_layout() -> None:
    space = SearchSpace.from_dict(
        {"a": [1, 2], "x": {"range": (0.0, 1.0)}, "y": {"range": (-10, 10)}}
    )

    configs = space.grid(20)

    # Start at (1, 1) points for (x, y), product 2 with the choices. Round 1 gives (2, 2),
    # product 8. Round 2 gives (3, 3), product 18. In round 3, x at 4 needs 24 > 20, so x stops.
    # y at 4 also needs 24, so y stops too.
    xs = linear_points(0.0, 1.0, 3)
    ys = linear_points(-10.0, 10.0, 3)
    expected = [{"a": a, "x": x, "y": y} for a, x, y in itertools.product([1, 2], xs, ys)]
    assert len(configs) == len(expected)
    for config, want in zip(configs, expected, strict=True):
        assert config["a"] == want["a"]
        assert config["x"] == pytest.approx(want["x"], rel=1e-12)
        assert config["y"] == pytest.approx(want["y"], rel=1e-12, abs=1e-12)


def test_grid_round_robin_gives_first_ranges_extra_point() -> None:
    space = SearchSpace.from_dict(
        {"x": {"range": (0.0, 1.0)}, "y": {"range": (0.0, 1.0)}, "z": {"range": (0.0, 1.0)}}
    )

    configs = space.grid(12)

    # Round 1: (2, 2, 2), product 8. Round 2: x to 3 gives 12, which fits. y to 3 would give
    # 18, and then z to 3 would give 18 too, so both stop.
    assert len(configs) == 12
    assert column(configs, "x") == pytest.approx(linear_points(0.0, 1.0, 3))
    assert column(configs, "y") == pytest.approx(linear_points(0.0, 1.0, 2))
    assert column(configs, "z") == pytest.approx(linear_points(0.0, 1.0, 2))


@pytest.mark.parametrize("budget", [1, 2, 7, 50])
def test_grid_single_float_range_fills_budget(budget: int) -> None:
    space = SearchSpace.from_dict({"x": {"range": (2.0, 5.0)}})

    values = [config["x"] for config in space.grid(budget)]

    assert values == pytest.approx(linear_points(2.0, 5.0, budget), rel=1e-12)
    assert all(2.0 < value < 5.0 for value in values)
    assert all(type(value) is float for value in values)


def test_grid_log_range_evenly_spaced_in_log() -> None:
    space = SearchSpace.from_dict({"lr": {"range": (1e-4, 1.0), "log": True}})

    values = [config["lr"] for config in space.grid(3)]

    assert values == pytest.approx([1e-3, 1e-2, 1e-1], rel=1e-9)
    ratios = [high / low for low, high in itertools.pairwise(values)]
    assert ratios == pytest.approx([10.0, 10.0], rel=1e-9)


def test_grid_log_range_layout_by_formula() -> None:
    space = SearchSpace.from_dict({"lr": {"range": (0.003, 47.0), "log": True}})

    values = [config["lr"] for config in space.grid(9)]

    assert values == pytest.approx(log_points(0.003, 47.0, 9), rel=1e-12)


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        (1, [2]),
        (2, [1, 3]),
        (3, [1, 2, 3]),
        (4, [0, 1, 2, 3]),
        (5, [0, 1, 2, 3, 4]),
        (100, [0, 1, 2, 3, 4]),
    ],
    ids=["one", "two", "all-interior", "plus-low", "plus-high", "budget-beyond-range"],
)
def test_grid_int_range_interior_first(budget: int, expected: list[int]) -> None:
    space = SearchSpace.from_dict({"n": {"range": (0, 4), "type": int}})

    values = [config["n"] for config in space.grid(budget)]

    assert values == expected
    assert all(type(value) is int for value in values)


@pytest.mark.parametrize(
    ("low", "high", "budget"),
    [(0, 100, 7), (-50, 51, 10), (3, 9, 5), (3, 9, 6), (3, 9, 7), (0, 1, 1), (0, 1, 5)],
    ids=["wide", "negative", "sparse", "all-interior", "plus-low", "no-interior", "pair"],
)
def test_grid_int_range_layout_by_formula(low: int, high: int, budget: int) -> None:
    space = SearchSpace.from_dict({"n": {"range": (low, high), "type": int}})

    values = [config["n"] for config in space.grid(budget)]

    assert values == int_axis(low, high, min(budget, high - low + 1))


def test_grid_log_int_range_rounds_log_points() -> None:
    space = SearchSpace.from_dict({"n": {"range": (1, 1000), "type": int, "log": True}})

    values = [config["n"] for config in space.grid(2)]

    assert values == [10, 100]


def test_grid_log_int_range_no_duplicates() -> None:
    space = SearchSpace.from_dict({"n": {"range": (1, 50), "type": int, "log": True}})

    values = [config["n"] for config in space.grid(40)]

    assert len(values) == len(set(values))
    assert len(values) <= 40
    assert all(1 <= value <= 50 for value in values)


def test_grid_int_and_float_ranges_share_budget() -> None:
    space = SearchSpace.from_dict({"n": {"range": (0, 2), "type": int}, "x": {"range": (0, 1)}})

    configs = space.grid(12)

    # n stops at its three integers, so x takes the rest of the budget: 12 // 3 = 4 points.
    assert column(configs, "n") == [0, 1, 2]
    assert column(configs, "x") == pytest.approx(linear_points(0.0, 1.0, 4))
    assert len(configs) == 12


def test_grid_discrete_only_terminates() -> None:
    space = SearchSpace.from_dict({"a": [1, 2, 3], "b": ["x", "y"]})

    configs = space.grid(1000)

    expected = [{"a": a, "b": b} for a, b in itertools.product([1, 2, 3], ["x", "y"])]
    assert configs == expected


def test_grid_huge_discrete_space_small_budget() -> None:
    names = [f"p{index}" for index in range(10)]
    space = SearchSpace.from_dict({name: list(range(10)) for name in names})

    started = time.perf_counter()
    configs = space.grid(5)
    elapsed = time.perf_counter() - started

    expected = [{**{name: 0 for name in names}, "p9": last} for last in range(5)]
    assert configs == expected
    assert elapsed < 1.0


def test_grid_choices_deduplicated() -> None:
    space = SearchSpace.from_dict({"a": [1, 1, 2], "b": [0.3, 0.1 + 0.2, [1], [1]]})

    configs = space.grid(100)

    assert len(configs) == 4
    assert len({config_key(config) for config in configs}) == 4


def test_grid_narrow_float_range_stays_inside() -> None:
    low = 1.0
    high = 1.0 + 8 * 2**-52
    space = SearchSpace.from_dict({"x": {"range": (low, high)}})

    values = [config["x"] for config in space.grid(50)]

    assert values
    assert all(low < value < high for value in values)
    assert len({config_key({"x": value}) for value in values}) == len(values)


def test_grid_budget_one_is_center() -> None:
    space = SearchSpace.from_dict(MIXED_SPACE)

    assert space.grid(1) == [space.center()]


@pytest.mark.parametrize(
    "budget",
    [0, -3, 2.5, True, "5", None],
    ids=["zero", "negative", "float", "bool", "str", "none"],
)
def test_grid_budget_invalid(budget: Any) -> None:
    space = SearchSpace.from_dict({"x": [1, 2]})

    with pytest.raises(ValueError, match=r"^budget must be a positive integer \(got "):
        space.grid(budget)


# center


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (["b", "a"], "b"),
        ({"range": (2, 6)}, 4.0),
        ({"range": (1e-4, 1.0), "log": True}, 1e-2),
        ({"range": (0, 10), "type": int}, 5),
        ({"range": (0, 5), "type": int}, 3),
        ({"range": (1, 10000), "type": int, "log": True}, 100),
        ({"range": (2, 3), "type": int, "log": True}, 2),
    ],
    ids=[
        "choice-first",
        "linear-midpoint",
        "log-geometric-mean",
        "int-midpoint",
        "int-half-rounds-up",
        "log-int-geometric-mean",
        "log-int-rounded",
    ],
)
def test_center_value(spec: Any, expected: Any) -> None:
    value = SearchSpace.from_dict({"p": spec}).center()["p"]

    assert type(value) is type(expected)
    if isinstance(expected, float):
        assert value == pytest.approx(expected, rel=1e-12)
    else:
        assert value == expected


# check_config


CHECK_SPACE: dict[str, Any] = {
    "opt": ["adam", 0.3, [1, 2]],
    "lr": {"range": (1e-4, 1.0), "log": True},
    "n": {"range": (1, 8), "type": int},
}


def test_check_config_returns_plain_copy() -> None:
    space = SearchSpace.from_dict(CHECK_SPACE)
    config = {"n": np.int64(4), "lr": np.float32(0.5), "opt": "adam"}

    checked = space.check_config(config, "start_config")

    assert checked == {"opt": "adam", "lr": 0.5, "n": 4}
    assert list(checked) == ["opt", "lr", "n"]
    assert type(checked["lr"]) is float
    assert type(checked["n"]) is int
    assert checked is not config


def test_check_config_converts_range_number_types() -> None:
    space = SearchSpace.from_dict(CHECK_SPACE)

    checked = space.check_config({"opt": "adam", "lr": 1, "n": 3.0}, "start_config")

    assert type(checked["lr"]) is float
    assert checked["lr"] == 1.0
    assert type(checked["n"]) is int
    assert checked["n"] == 3


def test_check_config_matches_choice_by_key() -> None:
    space = SearchSpace.from_dict(CHECK_SPACE)
    choice_list = space.params[0].choices[2]  # type: ignore[union-attr]

    rounded = space.check_config({"opt": 0.1 + 0.2, "lr": 0.1, "n": 1}, "start_config")
    listed = space.check_config({"opt": [1, 2], "lr": 0.1, "n": 1}, "start_config")

    assert rounded["opt"] == 0.3
    assert listed["opt"] is choice_list


def test_check_config_accepts_bounds() -> None:
    space = SearchSpace.from_dict(CHECK_SPACE)

    checked = space.check_config({"opt": "adam", "lr": 1e-4, "n": 8}, "start_config")

    assert checked["lr"] == 1e-4
    assert checked["n"] == 8


def test_check_config_non_mapping_type_error() -> None:
    space = SearchSpace.from_dict(CHECK_SPACE)

    with pytest.raises(TypeError) as excinfo:
        space.check_config(["adam"], "start_config")  # type: ignore[arg-type]

    assert str(excinfo.value) == (
        "start_config must be a mapping from parameter names to values (got ['adam'] of type list)"
    )


INVALID_CONFIGS = [
    pytest.param(
        {"opt": "adam", "lr": 0.1},
        "start_config must set every search space parameter (missing 'n')",
        id="missing",
    ),
    pytest.param(
        {"opt": "adam", "lr": 0.1, "n": 2, "extra": 1},
        "start_config must contain only search space parameters 'opt', 'lr', 'n' "
        "(got unknown 'extra')",
        id="unknown",
    ),
    pytest.param(
        {"opt": "sgd", "lr": 0.1, "n": 2},
        "start_config parameter 'opt': value must be one of ('adam', 0.3, [1, 2]) "
        "(got 'sgd' of type str)",
        id="not-a-choice",
    ),
    pytest.param(
        {"opt": "adam", "lr": 2.0, "n": 2},
        "start_config parameter 'lr': value must lie within [0.0001, 1.0] (got 2.0)",
        id="above-high",
    ),
    pytest.param(
        {"opt": "adam", "lr": 0.1, "n": 0},
        "start_config parameter 'n': value must lie within [1, 8] (got 0)",
        id="below-low",
    ),
    pytest.param(
        {"opt": "adam", "lr": math.nan, "n": 2},
        "start_config parameter 'lr': value must lie within [0.0001, 1.0] (got nan)",
        id="nan",
    ),
    pytest.param(
        {"opt": "adam", "lr": "0.1", "n": 2},
        "start_config parameter 'lr': value must be a real number (got '0.1' of type str)",
        id="str-value",
    ),
    pytest.param(
        {"opt": "adam", "lr": 0.1, "n": True},
        "start_config parameter 'n': value must be a real number (got True of type bool)",
        id="bool-value",
    ),
    pytest.param(
        {"opt": "adam", "lr": 0.1, "n": 2.5},
        "start_config parameter 'n': value of an int range must be an integer (got 2.5)",
        id="fractional-int",
    ),
]


@pytest.mark.parametrize(("config", "message"), INVALID_CONFIGS)
def test_check_config_invalid(config: dict[str, Any], message: str) -> None:
    space = SearchSpace.from_dict(CHECK_SPACE)

    with pytest.raises(SearchSpaceError) as excinfo:
        space.check_config(config, "start_config")

    assert str(excinfo.value) == message


# immutable_values and to_json


@pytest.mark.parametrize(
    ("choices", "expected"),
    [
        ([1, 2.5, "a", True, None], True),
        ([1, [2, 3]], False),
        ([{"a": 1}], False),
        ([(1, 2)], False),
    ],
    ids=["scalars", "list", "dict", "tuple"],
)
def test_immutable_values(choices: list[Any], expected: bool) -> None:
    space = SearchSpace.from_dict({"c": choices, "x": {"range": (0, 1)}})

    assert space.immutable_values is expected


def test_to_json_survives_round_trip() -> None:
    space = SearchSpace.from_dict(
        {
            **MIXED_SPACE,
            "act": [math.tanh, math.inf, (1, 2), {"k": [1]}, None, 0.5],
        }
    )

    description = space.to_json()

    assert json.loads(json.dumps(description, allow_nan=False)) == description


def test_to_json_equal_for_equal_dicts() -> None:
    first = SearchSpace.from_dict({**MIXED_SPACE, "act": [math.tanh, object]})
    second = SearchSpace.from_dict({**MIXED_SPACE, "act": [math.tanh, object]})

    assert first.to_json() == second.to_json()


@pytest.mark.parametrize(
    "changed",
    [
        {"opt": ["adam", "sgd"]},
        {"lr": {"range": (1e-5, 1.0)}},
        {"layers": {"range": (1, 7), "type": int}},
        {"layers": {"range": (1, 6), "type": float}},
    ],
    ids=["choices", "log-flag", "bound", "type"],
)
def test_to_json_differs_when_space_differs(changed: dict[str, Any]) -> None:
    original = SearchSpace.from_dict(MIXED_SPACE)
    modified = SearchSpace.from_dict({**MIXED_SPACE, **changed})

    assert original.to_json() != modified.to_json()


# config_key


def test_config_key_rounds_floats() -> None:
    assert config_key({"x": 0.1 + 0.2}) == config_key({"x": 0.3})
    assert config_key({"x": 1.0}) != config_key({"x": 1.0 + 1e-9})


def test_config_key_sorts_names() -> None:
    key = config_key({"b": 1, "a": 2})

    assert key == config_key({"a": 2, "b": 1})
    assert [name for name, _ in key] == ["a", "b"]


def test_config_key_unhashable_values_hashable() -> None:
    first = {"arch": [64, {"act": "relu", "p": 0.1 + 0.2}], "tags": {"x", "y"}}
    second = {"tags": {"y", "x"}, "arch": [64, {"p": 0.3, "act": "relu"}]}

    assert hash(config_key(first)) == hash(config_key(second))
    assert config_key(first) == config_key(second)


def test_config_key_list_and_tuple_differ() -> None:
    assert config_key({"a": [1, 2]}) != config_key({"a": (1, 2)})


def test_config_key_nan_equals_nan() -> None:
    assert config_key({"x": float("nan")}) == config_key({"x": float("nan")})


def test_config_key_numpy_values_match_plain() -> None:
    assert config_key({"x": np.float64(0.3), "n": np.int64(2)}) == config_key({"x": 0.3, "n": 2})
    assert config_key({"a": np.array([1.0, 2.0])}) == config_key({"a": np.array([1.0, 2.0])})
    assert config_key({"a": np.arange(2000)}) != config_key({"a": np.arange(2000)[::-1]})


# Hypothesis properties


SCALARS = st.one_of(
    st.integers(-5, 5),
    st.text(max_size=3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
CHOICES = st.lists(st.one_of(SCALARS, st.lists(SCALARS, max_size=2)), min_size=1, max_size=5)


@st.composite
def float_ranges(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        low = draw(st.floats(1e-8, 1e4))
        return {"range": (low, low * draw(st.floats(1.001, 1e8))), "log": True}

    low = draw(st.floats(-1e6, 1e6))
    return {"range": (low, low + draw(st.floats(1e-3, 1e6)))}


@st.composite
def int_ranges(draw: st.DrawFn) -> dict[str, Any]:
    log = draw(st.booleans())
    low = draw(st.integers(1, 1000) if log else st.integers(-1000, 1000))
    high = low + draw(st.integers(1, 10**6))
    return {"range": (low, high), "type": draw(st.sampled_from([int, "int"])), "log": log}


@st.composite
def extreme_float_ranges(draw: st.DrawFn) -> dict[str, Any]:
    low, high = sorted(
        draw(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=2))
    )
    return {"range": (low, high), "log": draw(st.booleans()) and low > 0}


PARAM_SPECS = st.one_of(CHOICES, float_ranges(), int_ranges(), extreme_float_ranges())
SPACES = st.dictionaries(st.text(min_size=1, max_size=4), PARAM_SPECS, min_size=1, max_size=4)


def build_or_reject(search_space: dict[str, Any]) -> SearchSpace:
    """Build a space, discarding the example when its bounds leave no float between them."""
    try:
        return SearchSpace.from_dict(search_space)
    except SearchSpaceError:
        assume(False)
        raise


@settings(deadline=None)
@given(search_space=SPACES, seed=st.integers(0, 2**32))
def test_property_samples_inside_space(search_space: dict[str, Any], seed: int) -> None:
    space = build_or_reject(search_space)
    rng = random.Random(seed)

    for _ in range(5):
        config = space.sample(rng)
        assert list(config) == list(search_space)
        for param in space.params:
            assert_value_in_param(config[param.name], param)


@settings(deadline=None)
@given(search_space=SPACES, budget=st.integers(1, 300))
def test_property_grid_within_budget_no_duplicates(
    search_space: dict[str, Any], budget: int
) -> None:
    space = build_or_reject(search_space)

    configs = space.grid(budget)

    assert 1 <= len(configs) <= budget
    assert len({config_key(config) for config in configs}) == len(configs)
    for config in configs:
        for param in space.params:
            value = config[param.name]
            if isinstance(param, ChoiceParam):
                assert any(value is choice for choice in param.choices)
            elif param.integer:
                assert type(value) is int
                assert param.low <= value <= param.high
            else:
                assert type(value) is float
                assert param.low < value < param.high


@settings(deadline=None)
@given(
    choices=st.lists(
        st.lists(st.integers(), min_size=1, max_size=6, unique=True), min_size=1, max_size=4
    ),
    budget=st.integers(1, 2000),
)
def test_property_grid_discrete_size(choices: list[list[int]], budget: int) -> None:
    space = SearchSpace.from_dict({f"p{index}": values for index, values in enumerate(choices)})

    configs = space.grid(budget)

    assert len(configs) == min(budget, math.prod(len(values) for values in choices))


@settings(deadline=None)
@given(count=st.integers(1, 4), budget=st.integers(1, 500))
def test_property_grid_float_ranges_use_budget(count: int, budget: int) -> None:
    names = [f"x{index}" for index in range(count)]
    space = SearchSpace.from_dict({name: {"range": (0.0, 1.0)} for name in names})

    configs = space.grid(budget)

    sizes = [len(column(configs, name)) for name in names]
    assert len(configs) == math.prod(sizes) <= budget
    for size in sizes:
        assert len(configs) // size * (size + 1) > budget
    # A range stops growing once its next point does not fit. A later range is no larger, so
    # its next point does not fit either, and the sizes never increase along the order.
    assert sizes == sorted(sizes, reverse=True)


ATOMS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=3),
    st.complex_numbers(),
    st.fractions(),
    st.decimals(),
    st.sampled_from([int, float, str, "int", "float", "integer", "range"]),
)
NESTED = st.recursive(
    ATOMS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(
            st.sampled_from(["range", "log", "type", "ragne", 0]), children, max_size=3
        ),
    ),
    max_leaves=8,
)
RANGE_LIKE = st.fixed_dictionaries(
    {"range": st.one_of(st.tuples(ATOMS, ATOMS), NESTED)},
    optional={"log": ATOMS, "type": ATOMS, "ragne": ATOMS},
)
MALFORMED = st.one_of(
    st.dictionaries(
        st.one_of(st.text(max_size=3), st.integers(), st.none()),
        st.one_of(RANGE_LIKE, NESTED),
        max_size=4,
    ),
    NESTED,
)


@settings(deadline=None, max_examples=300)
@given(search_space=MALFORMED)
def test_property_malformed_space_raises_only_documented(search_space: Any) -> None:
    try:
        space = SearchSpace.from_dict(search_space)
    except (SearchSpaceError, TypeError):
        return

    # Whatever from_dict accepts must work everywhere.
    config = space.sample(random.Random(0))
    assert space.check_config(config, "sample") is not config
    space.check_config(space.center(), "center")
    assert 1 <= len(space.grid(7)) <= 7
    json.dumps(space.to_json(), allow_nan=False)
