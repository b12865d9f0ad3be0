"""Hyperband: successive-halving brackets that trade the number of configurations for resource."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from .._engine import Tuner
from .._run import Scope
from ._schedule import finite_horizon_hyperband_schedule, hyperband_cost
from ._successive_halving import check_inner_tuner, run_successive_halving

logger = logging.getLogger(__name__)

SEED_BITS = 63  # size of the base seed drawn when tune_impl is called without one


class HyperbandTuner(Tuner):
    """Run one successive-halving bracket for each trade-off of configurations against resource.

    Li et al., "Hyperband" (arXiv:1603.06560): R is ``max_iter`` and eta is ``eta``. Bracket s,
    from s_max down to 0, starts n = ``K`` configurations at r = ``T = max_iter // eta**s`` with
    ``N = s + 1`` rungs. ``finite_horizon_hyperband_schedule`` lists
    the brackets, and ``SuccessiveHalvingTuner`` explains the resource and inner-tuner modes.

    Departures:

    - Bracket sizes are ``floor((s_max + 1) / (s + 1)) * eta**s``, as the original computed
      them. ``paper_sizes=True`` selects the paper's ``ceil((s_max + 1) / (s + 1) * eta**s)``.
    - ``r`` is rounded down to an integer, so no rung exceeds ``max_iter``.
    - The brackets run concurrently instead of one after another. Each has its own random
      generator, seeded from ``seed`` and the bracket's index, so the configurations drawn do
      not depend on timing.

    Example::

        tuner = HyperbandTuner({"lr": {"range": (1e-4, 1e-1), "log": True}}, train)
        result = tuner.tune(max_iter=81, eta=3)  # calls train(config, epochs), epochs <= 81
    """

    @classmethod
    def finite_horizon_hyperband_schedule(
        cls, max_iter: int, eta: int, *, paper_sizes: bool = False
    ) -> list[dict[str, int]]:
        """Return the brackets as dicts with the keys ``K``, ``eta``, ``T`` and ``N``.

        Raises:
            TypeError: ``max_iter`` or ``eta`` is not an int.
            ValueError: ``max_iter`` is below 1 or ``eta`` is below 2.
        """
        return finite_horizon_hyperband_schedule(max_iter, eta, paper_sizes=paper_sizes)

    @classmethod
    def estimate_cost(cls, schedule: Sequence[Mapping[str, int]]) -> int:
        """Return the cost of running every bracket of ``schedule`` without a budget cut."""
        return hyperband_cost(schedule)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Validate the options, which ``tune_impl`` documents, before the run starts."""
        _check_paper_sizes(options["paper_sizes"])
        finite_horizon_hyperband_schedule(options["max_iter"], options["eta"])
        check_inner_tuner(options["tuner"], options["tuner_params"])

    async def tune_impl(
        self,
        scope: Scope,
        *,
        max_iter: int,
        eta: int,
        tuner: type[Tuner] | None = None,
        tuner_params: dict[str, Any] | None = None,
        paper_sizes: bool = False,
        seed: int | None = None,
    ) -> None:
        """Run every bracket of the schedule concurrently.

        If the run is cancelled, the running trials of every bracket are cancelled too, and the
        engine keeps the trials that finished.

        Args:
            scope: The engine's view of the run.
            max_iter: The largest resource one configuration may receive.
            eta: The reduction factor between rungs.
            tuner: The ``Tuner`` subclass to run from each configuration, or None for resource
                mode, where ``eval_fn(config, resource)`` is called.
            tuner_params: Options for ``tuner.tune_impl``.
            paper_sizes: Size the brackets as the paper does (see the class docstring).
            seed: The seed of the run. Each bracket's random generator is derived from it and
                the bracket's index. Without one, a seed is drawn from the run's generator.

        Raises:
            TypeError: An option has the wrong type, or ``tuner_params`` does not fit
                ``tuner.tune_impl``.
            ValueError: An option is out of range.
        """
        _check_paper_sizes(paper_sizes)
        schedule = finite_horizon_hyperband_schedule(max_iter, eta, paper_sizes=paper_sizes)
        params = check_inner_tuner(tuner, tuner_params)
        base_seed = seed if seed is not None else scope.rng.getrandbits(SEED_BITS)

        async with anyio.create_task_group() as group:
            for bracket in schedule:
                index = bracket["N"] - 1
                _report(
                    scope,
                    "bracket %d starts: K=%d configs at resource T=%d, N=%d rungs",
                    index,
                    bracket["K"],
                    bracket["T"],
                    bracket["N"],
                )
                child = scope.child(bracket=index, rng=bracket_rng(base_seed, index))
                group.start_soon(_run_bracket, self, child, bracket, tuner, params)


def bracket_rng(seed: int, bracket: int) -> random.Random:
    """Return the random generator of ``bracket``, which depends only on ``seed`` and it."""
    # random.Random turns a str seed into an int from its bytes and their SHA-512 digest, so
    # the stream does not depend on PYTHONHASHSEED, unlike a seed of hash((seed, bracket)).
    return random.Random(f"hyperband:{seed}:{bracket}")


async def _run_bracket(
    owner: Tuner,
    scope: Scope,
    bracket: Mapping[str, int],
    tuner: type[Tuner] | None,
    tuner_params: dict[str, Any],
) -> None:
    await run_successive_halving(
        owner,
        scope,
        eta=bracket["eta"],
        N=bracket["N"],
        K=bracket["K"],
        T=bracket["T"],
        tuner=tuner,
        tuner_params=tuner_params,
    )
    _report(scope, "bracket %s finished", scope.bracket)


def _check_paper_sizes(paper_sizes: object) -> None:
    if not isinstance(paper_sizes, bool):
        msg = f"paper_sizes must be True or False (got {paper_sizes!r})"
        raise TypeError(msg)


def _report(scope: Scope, msg: str, *args: object) -> None:
    """Log ``msg`` at INFO level and write it to the run's log."""
    logger.info(msg, *args)
    scope.log_msg(msg % args)
