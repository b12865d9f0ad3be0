"""Successive halving, in resource mode or with an inner tuner per configuration.

Implementation notes. Every rung runs all of its configurations at once: in resource mode as one
``evaluate_many`` batch, in inner-tuner mode as one task per configuration in a task group. The
naive concurrent version lets each task draw from the run's random generator as it goes, so the
configurations drawn would depend on which task the scheduler woke first. Here every random
draw (the rung-0 configurations, and one seed per inner run) happens before the rung's tasks
start, in a fixed order, so a seed gives the same trials on asyncio and trio with any number of
workers. After a rung, the ``promotion_count`` best configurations survive: best first in the
direction of ``maximize``, ties broken by the earlier configuration, failed trials and NaN
scores last. A rung that the budget or the time budget cuts short ends the search.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from .._engine import Tuner
from .._options import bind_options
from .._run import Scope
from ._schedule import (
    rung_resources,
    rung_sizes,
    successive_halving_cost,
    validate_successive_halving,
)

logger = logging.getLogger(__name__)

SEED_BITS = 63  # size of the seed drawn for each inner run's random generator


@dataclass
class Candidate:
    """A configuration in a rung, with its best known score (None if unknown or failed)."""

    config: dict[str, Any]
    score: float | None = None
    scored: bool = False  # whether the config was evaluated, so ``score`` is its result


class SuccessiveHalvingTuner(Tuner):
    """Start K random configurations at resource T and keep the best 1/eta after each rung.

    The SuccessiveHalving subroutine of Li et al., "Hyperband" (arXiv:1603.06560): n is ``K``,
    r is ``T``, eta is ``eta``, and the bracket's s + 1 rungs are ``N``.
    Rung i runs ``rung_sizes(K, N, eta)[i]`` configurations at resource ``T * eta**i``.

    Two modes. In resource mode (``tuner=None``) each trial calls ``eval_fn(config, resource)``
    and costs ``resource``, as in the paper. Inner-tuner mode is the original ``rekall.tuner``
    one. There the resource of a configuration is a budget of evaluations for a run of ``tuner``
    that starts from it. Rung 0 evaluates the configuration first, inside that budget. Later
    rungs start from each survivor's best configuration and do not evaluate it again.

    Departures:

    - A rung keeps ``max(1, n // eta)`` configurations, as the original did, where the paper
      keeps ``floor(n / eta)``, so a rung never empties.
    - Survivors are the best in the direction of ``maximize``, and the next rung runs them best
      first. The original kept the lowest scores whatever the direction.
    - The configurations of a rung run concurrently.

    Example::

        tuner = SuccessiveHalvingTuner({"lr": {"range": (1e-4, 1e-1), "log": True}}, train)
        result = tuner.tune(eta=3, N=3, K=9, T=1)  # calls train(config, epochs)
    """

    @classmethod
    def estimate_cost(cls, eta: int, N: int, K: int, T: int) -> int:
        """Return the cost of a run that the budget does not cut short."""
        return successive_halving_cost(eta, N, K, T)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Validate the options, which ``tune_impl`` documents, before the run starts."""
        validate_successive_halving(options["eta"], options["N"], options["K"], options["T"])
        check_inner_tuner(options["tuner"], options["tuner_params"])

    async def tune_impl(
        self,
        scope: Scope,
        *,
        eta: int,
        N: int,
        K: int,
        T: int,
        tuner: type[Tuner] | None = None,
        tuner_params: dict[str, Any] | None = None,
        seed: int | None = None,
    ) -> None:
        """Run successive halving.

        If the run is cancelled, the running trials of the current rung are cancelled too, and
        the engine keeps the trials that finished.

        Args:
            scope: The engine's view of the run.
            eta: The reduction factor: each rung keeps ``max(1, n // eta)`` of its n
                configurations and multiplies the resource by ``eta``.
            N: The number of rungs.
            K: The number of configurations drawn for rung 0.
            T: The resource of rung 0: passed to ``eval_fn`` in resource mode, or the budget
                of each inner run.
            tuner: The ``Tuner`` subclass to run from each configuration, or None for resource
                mode.
            tuner_params: Options for ``tuner.tune_impl``.
            seed: The seed of the run's random generator, which the engine applies.

        Raises:
            TypeError: An option has the wrong type, or ``tuner_params`` does not fit
                ``tuner.tune_impl``.
            ValueError: An option is out of range.
        """
        validate_successive_halving(eta, N, K, T)
        params = check_inner_tuner(tuner, tuner_params)

        await run_successive_halving(
            self, scope, eta=eta, N=N, K=K, T=T, tuner=tuner, tuner_params=params
        )


def check_inner_tuner(tuner: object, tuner_params: object) -> dict[str, Any]:
    """Check ``tuner`` and ``tuner_params`` and return the inner options as a new dict.

    Raises:
        TypeError: ``tuner`` is not a ``Tuner`` subclass, ``tuner_params`` is not a dict, or
            its keys do not fit the keyword-only parameters of ``tuner.tune_impl``.
        ValueError: ``tuner_params`` is given without ``tuner``.
    """
    if tuner is None:
        if tuner_params is not None:
            msg = (
                "tuner_params needs tuner=..., the inner tuner they configure "
                f"(got tuner_params={tuner_params!r} and tuner=None)"
            )
            raise ValueError(msg)
        return {}

    if not (isinstance(tuner, type) and issubclass(tuner, Tuner)) or not _is_strategy(tuner):
        msg = (
            "tuner must be a strategy class such as RandomTuner or CoordinateDescentTuner, "
            f"or None (got {tuner!r})"
        )
        raise TypeError(msg)

    if tuner_params is None:
        tuner_params = {}
    if not isinstance(tuner_params, dict):
        msg = (
            f"tuner_params must be a dict of options for {tuner.__name__} "
            f"(got {tuner_params!r} of type {type(tuner_params).__name__})"
        )
        raise TypeError(msg)

    try:
        bind_options(tuner.__name__, tuner.tune_impl, tuner_params)
    except TypeError as exc:
        msg = f"tuner_params must fit the options of {tuner.__name__}.tune_impl ({exc})"
        raise TypeError(msg) from exc

    return dict(tuner_params)


def _is_strategy(tuner: type[Tuner]) -> bool:
    """Return whether a class below ``Tuner`` in the hierarchy defines ``tune_impl``."""
    return any("tune_impl" in vars(cls) for cls in tuner.__mro__ if cls is not Tuner)


def survivor_order(scores: Sequence[float | None], *, maximize: bool) -> list[int]:
    """Return the indices of ``scores`` from best to worst.

    Equal scores keep their order, and None and NaN come last.
    """

    def rank(index: int) -> tuple[int, float, int]:
        score = scores[index]
        if score is None or math.isnan(score):
            return (1, 0.0, index)
        return (0, -score if maximize else score, index)

    return sorted(range(len(scores)), key=rank)


async def run_successive_halving(
    owner: Tuner,
    scope: Scope,
    *,
    eta: int,
    N: int,
    K: int,
    T: int,
    tuner: type[Tuner] | None,
    tuner_params: dict[str, Any],
) -> None:
    """Run one successive-halving bracket on ``scope`` with options already validated.

    ``owner`` supplies the search space, ``eval_fn`` and ``maximize`` for inner tuners.
    """
    sizes = rung_sizes(K, N, eta)
    resources = rung_resources(T, N, eta)
    candidates = [
        Candidate(scope.space.sample(scope.rng)) for _ in range(affordable(scope, K, T, tuner))
    ]

    for rung, resource in enumerate(resources):
        _report(
            scope,
            "%srung %d of %d: %d configs at resource %d",
            _bracket_prefix(scope),
            rung,
            N,
            len(candidates),
            resource,
        )
        if tuner is None:
            finished = await _run_rung_with_resource(scope, candidates, resource, rung)
        else:
            finished = await _run_rung_with_tuner(
                owner, scope, candidates, resource, rung, tuner, tuner_params
            )
        if not finished:
            _report(
                scope,
                "%sstopped in rung %d: the budget or the time budget is spent",
                _bracket_prefix(scope),
                rung,
            )
            return

        if rung + 1 < N:
            order = survivor_order([c.score for c in candidates], maximize=scope.maximize)
            candidates = [candidates[index] for index in order[: sizes[rung + 1]]]


async def _run_rung_with_resource(
    scope: Scope, candidates: list[Candidate], resource: int, rung: int
) -> bool:
    """Evaluate every candidate at ``resource``, and return False if the rung was cut short."""
    configs = [candidate.config for candidate in candidates]
    trials = await scope.evaluate_many(configs, resource=resource, rung=rung)
    for candidate, trial in zip(candidates, trials, strict=False):
        candidate.score = trial.score if trial.ok else None
        candidate.scored = True
    return len(trials) == len(candidates)


async def _run_rung_with_tuner(
    owner: Tuner,
    scope: Scope,
    candidates: list[Candidate],
    budget: int,
    rung: int,
    tuner: type[Tuner],
    tuner_params: dict[str, Any],
) -> bool:
    """Run an inner tuner from every candidate, and return False if the budget ran out."""
    seeds = [scope.rng.getrandbits(SEED_BITS) for _ in candidates]
    async with anyio.create_task_group() as group:
        for candidate, seed in zip(candidates, seeds, strict=True):
            child = scope.child(budget=budget, rung=rung, rng=random.Random(seed))
            group.start_soon(_run_inner, owner, child, candidate, budget, tuner, tuner_params)
    return not scope.exhausted


async def _run_inner(
    owner: Tuner,
    scope: Scope,
    candidate: Candidate,
    budget: int,
    tuner: type[Tuner],
    tuner_params: dict[str, Any],
) -> None:
    """Run ``tuner`` from ``candidate`` on ``scope`` and store the best result in ``candidate``.

    A candidate without a score is evaluated first, inside ``budget``. The inner tuner then
    gets the start's score, so it does not evaluate the start again.
    """
    inner_budget = budget
    if not candidate.scored:
        trial = await scope.evaluate(candidate.config)
        if trial is None:
            return
        candidate.score = trial.score if trial.ok else None
        candidate.scored = True
        inner_budget -= 1

    if inner_budget >= 1:
        start_score = candidate.score
        if start_score is None or math.isnan(start_score):
            # The constructor rejects a NaN start_score, and with None the inner tuner would
            # evaluate the failed start again. An infinite score is the worst it can be.
            start_score = -math.inf if owner.maximize else math.inf
        inner = tuner(
            owner.search_space,
            owner.eval_fn,
            maximize=owner.maximize,
            budget=inner_budget,
            start_config=candidate.config,
            start_score=start_score,
        )
        await inner.tune_impl(scope, **tuner_params)

    best = scope.best
    if best is not None and scope.is_better(best.score, candidate.score):
        candidate.config, candidate.score = best.config, best.score


def affordable(scope: Scope, K: int, T: int, tuner: type[Tuner] | None) -> int:
    """Return how many of the K rung-0 configurations the budget left can start.

    A rung-0 trial costs T in resource mode and at least 1 with an inner tuner. Drawing only
    those keeps a huge K with a small budget from building configurations that never run.
    """
    remaining = scope.remaining
    if math.isinf(remaining):
        return K
    cost = T if tuner is None else 1
    return max(0, min(K, int(remaining // cost)))


def _bracket_prefix(scope: Scope) -> str:
    return "" if scope.bracket is None else f"bracket {scope.bracket}, "


def _report(scope: Scope, msg: str, *args: object) -> None:
    """Log ``msg`` at INFO level and write it to the run's log."""
    logger.info(msg, *args)
    scope.log_msg(msg % args)
