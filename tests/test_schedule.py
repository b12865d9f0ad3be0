"""Tests for the successive-halving and hyperband schedule math."""

from __future__ import annotations

import fractions
import itertools
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from async_tuner.strategies._schedule import (
    bracket_size,
    finite_horizon_hyperband_schedule,
    hyperband_cost,
    max_bracket_index,
    promotion_count,
    rung_resources,
    rung_sizes,
    successive_halving_cost,
)

max_iters = st.integers(min_value=1, max_value=10**6)
etas = st.integers(min_value=2, max_value=12)


def _triples(schedule: list[dict[str, int]]) -> list[tuple[int, int, int]]:
    return [(bracket["K"], bracket["T"], bracket["N"]) for bracket in schedule]


def _simulated_cost(eta: int, N: int, K: int, T: int) -> int:
    """Count the cost by walking the rungs one by one, as a reference."""
    cost = 0
    configs, resource = K, T
    for _ in range(N):
        cost += configs * resource
        configs = max(1, configs // eta)
        resource *= eta
    return cost


@pytest.mark.parametrize(
    ("max_iter", "eta", "expected"),
    [
        pytest.param(81, 3, [(81, 1, 5), (27, 3, 4), (9, 9, 3), (6, 27, 2), (5, 81, 1)], id="81-3"),
        pytest.param(
            243,
            3,
            [(243, 1, 6), (81, 3, 5), (27, 9, 4), (18, 27, 3), (9, 81, 2), (6, 243, 1)],
            id="243-3",
        ),
        pytest.param(
            1000, 10, [(1000, 1, 4), (100, 10, 3), (20, 100, 2), (4, 1000, 1)], id="1000-10"
        ),
        pytest.param(8, 2, [(8, 1, 4), (4, 2, 3), (4, 4, 2), (4, 8, 1)], id="8-2"),
    ],
)
def test_schedule_exact_brackets(
    max_iter: int, eta: int, expected: list[tuple[int, int, int]]
) -> None:
    schedule = finite_horizon_hyperband_schedule(max_iter, eta)

    assert _triples(schedule) == expected
    assert all(bracket["eta"] == eta for bracket in schedule)
    assert all(list(bracket) == ["K", "eta", "T", "N"] for bracket in schedule)


def test_schedule_paper_sizes_exact() -> None:
    # ceil(5 / (s + 1) * 3**s) for s = 4 .. 0 is 81, 34 (33.75), 15, 8 (7.5) and 5.
    schedule = finite_horizon_hyperband_schedule(81, 3, paper_sizes=True)

    assert [bracket["K"] for bracket in schedule] == [81, 34, 15, 8, 5]
    assert [bracket["T"] for bracket in schedule] == [1, 3, 9, 27, 81]
    assert [bracket["N"] for bracket in schedule] == [5, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("max_iter", "eta", "expected"),
    [(243, 3, 5), (1000, 10, 3), (8, 2, 3), (1, 2, 0), (80, 3, 3), (81, 3, 4), (10**18, 10, 18)],
)
def test_max_bracket_index_exact(max_iter: int, eta: int, expected: int) -> None:
    assert max_bracket_index(max_iter, eta) == expected


@given(max_iter=max_iters, eta=etas)
def test_max_bracket_index_is_largest_power(max_iter: int, eta: int) -> None:
    s_max = max_bracket_index(max_iter, eta)

    assert eta**s_max <= max_iter
    assert eta ** (s_max + 1) > max_iter


@given(max_iter=max_iters, eta=etas, paper_sizes=st.booleans())
def test_schedule_resources_never_above_max_iter(
    max_iter: int, eta: int, paper_sizes: bool
) -> None:
    schedule = finite_horizon_hyperband_schedule(max_iter, eta, paper_sizes=paper_sizes)

    for bracket in schedule:
        resources = rung_resources(bracket["T"], bracket["N"], eta)
        assert max(resources) <= max_iter
        assert min(resources) >= 1


@given(max_iter=max_iters, eta=etas)
def test_schedule_formulas(max_iter: int, eta: int) -> None:
    schedule = finite_horizon_hyperband_schedule(max_iter, eta)
    s_max = len(schedule) - 1

    assert eta**s_max <= max_iter < eta ** (s_max + 1)
    for position, bracket in enumerate(schedule):
        s = s_max - position
        assert bracket["N"] == s + 1
        assert bracket["T"] == max_iter // eta**s
        assert bracket["K"] == math.floor(fractions.Fraction(s_max + 1, s + 1)) * eta**s


@given(max_iter=max_iters, eta=etas)
def test_schedule_paper_sizes_formula(max_iter: int, eta: int) -> None:
    schedule = finite_horizon_hyperband_schedule(max_iter, eta, paper_sizes=True)
    floor_schedule = finite_horizon_hyperband_schedule(max_iter, eta)
    s_max = len(schedule) - 1

    for position, bracket in enumerate(schedule):
        s = s_max - position
        exact = fractions.Fraction((s_max + 1) * eta**s, s + 1)
        assert bracket["K"] >= exact
        assert bracket["K"] - 1 < exact
        assert bracket["K"] >= floor_schedule[position]["K"]
        assert bracket["T"] == floor_schedule[position]["T"]
        assert bracket["N"] == floor_schedule[position]["N"]


@given(s_max=st.integers(min_value=0, max_value=12), eta=etas)
def test_bracket_size_top_bracket_is_eta_power(s_max: int, eta: int) -> None:
    assert bracket_size(s_max, s_max, eta) == eta**s_max
    assert bracket_size(s_max, s_max, eta, paper_sizes=True) == eta**s_max
    assert bracket_size(0, s_max, eta) == s_max + 1


@pytest.mark.parametrize(
    ("n", "eta", "expected"), [(0, 3, 1), (1, 3, 1), (2, 3, 1), (3, 3, 1), (8, 3, 2), (9, 3, 3)]
)
def test_promotion_count_exact(n: int, eta: int, expected: int) -> None:
    assert promotion_count(n, eta) == expected


@given(
    K=st.integers(min_value=1, max_value=10**5),
    N=st.integers(min_value=1, max_value=12),
    eta=etas,
)
def test_rung_sizes_properties(K: int, N: int, eta: int) -> None:
    sizes = rung_sizes(K, N, eta)

    assert len(sizes) == N
    assert sizes[0] == K
    for previous, current in itertools.pairwise(sizes):
        assert current == max(1, previous // eta)
        assert 1 <= current <= previous


def test_rung_sizes_exact() -> None:
    assert rung_sizes(81, 5, 3) == [81, 27, 9, 3, 1]
    assert rung_sizes(10, 4, 3) == [10, 3, 1, 1]
    assert rung_resources(1, 5, 3) == [1, 3, 9, 27, 81]


def test_successive_halving_cost_exact() -> None:
    # 81 * 1 + 27 * 3 + 9 * 9 + 3 * 27 + 1 * 81
    assert successive_halving_cost(3, 5, 81, 1) == 405
    # 10 * 2 + 5 * 4 + 2 * 8
    assert successive_halving_cost(2, 3, 10, 2) == 56


@given(
    eta=etas,
    N=st.integers(min_value=1, max_value=10),
    K=st.integers(min_value=1, max_value=10**4),
    T=st.integers(min_value=1, max_value=100),
)
def test_successive_halving_cost_matches_simulation(eta: int, N: int, K: int, T: int) -> None:
    assert successive_halving_cost(eta, N, K, T) == _simulated_cost(eta, N, K, T)


@given(max_iter=st.integers(min_value=1, max_value=10**4), eta=etas, paper_sizes=st.booleans())
def test_hyperband_cost_sums_brackets(max_iter: int, eta: int, paper_sizes: bool) -> None:
    schedule = finite_horizon_hyperband_schedule(max_iter, eta, paper_sizes=paper_sizes)
    expected = sum(_simulated_cost(b["eta"], b["N"], b["K"], b["T"]) for b in schedule)

    assert hyperband_cost(schedule) == expected


def test_hyperband_cost_exact() -> None:
    # Brackets of (81, 3): 405 + (27*3 + 9*9 + 3*27 + 1*81) + (9*9 + 3*27 + 1*81)
    # + (6*27 + 2*81) + 5*81.
    expected = 405 + 324 + 243 + 324 + 405

    assert hyperband_cost(finite_horizon_hyperband_schedule(81, 3)) == expected


def test_hyperband_cost_missing_key() -> None:
    with pytest.raises(ValueError, match="bracket 0 without T"):
        hyperband_cost([{"K": 1, "eta": 3, "N": 1}])


@pytest.mark.parametrize(
    ("max_iter", "eta", "error", "match"),
    [
        pytest.param(0, 3, ValueError, r"max_iter must be an integer >= 1 \(got 0\)", id="zero"),
        pytest.param(81, 1, ValueError, r"eta must be an integer >= 2 \(got 1\)", id="eta-1"),
        pytest.param(81.0, 3, TypeError, r"max_iter must be an integer", id="float"),
        pytest.param(81, 3.0, TypeError, r"eta must be an integer", id="eta-float"),
        pytest.param(True, 3, TypeError, r"max_iter must be an integer", id="bool"),
    ],
)
def test_schedule_invalid_arguments(
    max_iter: Any, eta: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        finite_horizon_hyperband_schedule(max_iter, eta)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        pytest.param((1, 3, 9, 1), ValueError, r"eta must be an integer >= 2 \(got 1\)", id="eta"),
        pytest.param((3, 0, 9, 1), ValueError, r"N must be an integer >= 1 \(got 0\)", id="N"),
        pytest.param((3, 3, -1, 1), ValueError, r"K must be an integer >= 1 \(got -1\)", id="K"),
        pytest.param((3, 3, 9, 0), ValueError, r"T must be an integer >= 1 \(got 0\)", id="T"),
        pytest.param((3, 3, 9, 1.5), TypeError, r"T must be an integer", id="T-float"),
    ],
)
def test_successive_halving_cost_invalid(
    args: tuple[Any, Any, Any, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        successive_halving_cost(*args)
