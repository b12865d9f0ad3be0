"""Schedule math for successive halving and hyperband.

The formulas follow Li et al., "Hyperband: A Novel Bandit-Based Approach to Hyperparameter
Optimization" (arXiv:1603.06560). The paper's symbols take the names of the original
``rekall.tuner`` API: R is ``max_iter``, n (configurations in a bracket) is ``K``, and r
(resource of the first rung) is ``T``. A bracket with index s has ``N = s + 1`` rungs. Everything is
computed with integers: in floating point ``math.log(243) / math.log(3)`` is 4.999999999999999,
so taking ``int()`` of the logarithm, as the original did, drops the top bracket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

__all__ = [
    "bracket_size",
    "finite_horizon_hyperband_schedule",
    "hyperband_cost",
    "max_bracket_index",
    "promotion_count",
    "rung_resources",
    "rung_sizes",
    "successive_halving_cost",
    "validate_successive_halving",
]

# Keys of one bracket in a hyperband schedule, in the original API's order.
BRACKET_KEYS = ("K", "eta", "T", "N")


def _check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``minimum``, else raise."""
    if not isinstance(value, int) or isinstance(value, bool):
        type_name = type(value).__name__
        msg = f"{name} must be an integer >= {minimum} (got {value!r} of type {type_name})"
        raise TypeError(msg)
    if value < minimum:
        msg = f"{name} must be an integer >= {minimum} (got {value!r})"
        raise ValueError(msg)
    return value


# Largest resource a rung may have: every integer up to it is exact as a float, so budgets,
# costs and progress bars stay exact.
MAX_RESOURCE = 2**53


def validate_successive_halving(eta: object, N: object, K: object, T: object) -> None:
    """Check the successive-halving parameters.

    Raises:
        TypeError: A parameter is not an int (bool included).
        ValueError: ``eta`` is below 2, or ``N``, ``K`` or ``T`` is below 1.
    """
    _check_int("eta", eta, 2)
    _check_int("N", N, 1)
    _check_int("K", K, 1)
    _check_int("T", T, 1)
    resource = cast(int, T)
    for rung in range(1, cast(int, N)):  # stops early, so a huge N costs no huge power
        resource *= cast(int, eta)
        if resource > MAX_RESOURCE:
            msg = (
                f"the last rung's resource T * eta**(N - 1) must be at most {MAX_RESOURCE} "
                f"(got T={T}, eta={eta}, N={N}, which passes it at rung {rung}); use fewer rungs"
            )
            raise ValueError(msg)
    if cast(int, T) > MAX_RESOURCE:
        msg = f"T must be at most {MAX_RESOURCE} (got {T})"
        raise ValueError(msg)


def max_bracket_index(max_iter: int, eta: int) -> int:
    """Return s_max, the largest s with ``eta**s <= max_iter``, using integer arithmetic only."""
    s_max = 0
    while eta ** (s_max + 1) <= max_iter:
        s_max += 1
    return s_max


def bracket_size(s: int, s_max: int, eta: int, *, paper_sizes: bool = False) -> int:
    """Return K, the number of configurations that bracket ``s`` starts with.

    By default ``K = floor((s_max + 1) / (s + 1)) * eta**s``, as the original computed it. With
    ``paper_sizes`` it is the paper's ``ceil((s_max + 1) / (s + 1) * eta**s)``, computed exactly
    by integer ceiling division.
    """
    power: int = eta**s
    if paper_sizes:
        return -(-(s_max + 1) * power // (s + 1))
    return (s_max + 1) // (s + 1) * power


def finite_horizon_hyperband_schedule(
    max_iter: int, eta: int, *, paper_sizes: bool = False
) -> list[dict[str, int]]:
    """Return the hyperband brackets for a maximum resource of ``max_iter`` per configuration.

    Brackets run from s = s_max down to 0. Bracket s starts ``K`` configurations (see
    `bracket_size`) at resource ``T = max_iter // eta**s`` and has ``N = s + 1`` rungs, so its
    last rung uses ``T * eta**s <= max_iter``.

    Args:
        max_iter: The maximum resource one configuration may receive (the paper's R).
        eta: The reduction factor between rungs.
        paper_sizes: Round bracket sizes up as the paper does instead of the original's floor.

    Returns:
        One dict per bracket with the keys ``K``, ``eta``, ``T`` and ``N``.

    Raises:
        TypeError: ``max_iter`` or ``eta`` is not an int.
        ValueError: ``max_iter`` is below 1 or ``eta`` is below 2.
    """
    _check_int("max_iter", max_iter, 1)
    _check_int("eta", eta, 2)
    if max_iter > MAX_RESOURCE:
        msg = f"max_iter must be at most {MAX_RESOURCE} (got {max_iter})"
        raise ValueError(msg)

    s_max = max_bracket_index(max_iter, eta)
    return [
        {
            "K": bracket_size(s, s_max, eta, paper_sizes=paper_sizes),
            "eta": eta,
            "T": max_iter // eta**s,
            "N": s + 1,
        }
        for s in range(s_max, -1, -1)
    ]


def promotion_count(n: int, eta: int) -> int:
    """Return how many of ``n`` configurations a rung promotes: ``max(1, n // eta)``."""
    return max(1, n // eta)


def rung_sizes(K: int, N: int, eta: int) -> list[int]:
    """Return the number of configurations in each of the ``N`` rungs, starting from ``K``."""
    sizes = [K]
    for _ in range(N - 1):
        sizes.append(promotion_count(sizes[-1], eta))
    return sizes


def rung_resources(T: int, N: int, eta: int) -> list[int]:
    """Return the resource of each of the ``N`` rungs: ``T * eta**i`` for rung i."""
    return [T * eta**i for i in range(N)]


def successive_halving_cost(eta: int, N: int, K: int, T: int) -> int:
    """Return the cost of a complete successive-halving run: ``sum_i n_i * T * eta**i``.

    Raises:
        TypeError: A parameter is not an int.
        ValueError: ``eta`` is below 2, or ``N``, ``K`` or ``T`` is below 1.
    """
    validate_successive_halving(eta, N, K, T)
    sizes = rung_sizes(K, N, eta)
    resources = rung_resources(T, N, eta)
    return sum(size * resource for size, resource in zip(sizes, resources, strict=True))


def hyperband_cost(schedule: Sequence[Mapping[str, int]]) -> int:
    """Return the cost of a complete hyperband run: the sum of its brackets' costs.

    Raises:
        ValueError: A bracket lacks one of the keys ``K``, ``eta``, ``T`` and ``N``.
    """
    total = 0
    for index, bracket in enumerate(schedule):
        missing = [key for key in BRACKET_KEYS if key not in bracket]
        if missing:
            msg = (
                f"each bracket must have the keys {', '.join(BRACKET_KEYS)} "
                f"(got bracket {index} without {', '.join(missing)})"
            )
            raise ValueError(msg)
        total += successive_halving_cost(bracket["eta"], bracket["N"], bracket["K"], bracket["T"])
    return total
