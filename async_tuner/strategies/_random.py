"""Random search."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from .._engine import Tuner
from .._run import Scope
from .._space import SearchSpace


class RandomTuner(Tuner):
    """Evaluate configurations drawn uniformly from the search space until the budget is spent.

    Log ranges are drawn log-uniformly, integer ranges uniformly over their integers. With a
    ``start_config`` and no ``start_score``, the start is evaluated first. The draws come from
    ``random.Random(seed)`` in the order the trials are submitted, so a seed gives the same
    configurations, and the same ``score_history``, with any ``num_workers``.

    Example:
        >>> tuner = RandomTuner({"x": {"range": (0.0, 1.0)}}, lambda c: -c["x"], budget=20)
        >>> best_score, best_config, *_ = tuner.tune(seed=0)
    """

    @classmethod
    def generate_configs(
        cls,
        search_space: Mapping[str, Any] | SearchSpace,
        num_configs: int,
        seed: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return ``num_configs`` random configurations drawn with ``random.Random(seed)``."""
        space = (
            search_space
            if isinstance(search_space, SearchSpace)
            else SearchSpace.from_dict(search_space)
        )
        if isinstance(num_configs, bool) or not isinstance(num_configs, int) or num_configs < 0:
            msg = f"num_configs must be a non-negative integer (got {num_configs!r})"
            raise ValueError(msg)
        import random

        rng = random.Random(seed)
        return [space.sample(rng) for _ in range(num_configs)]

    async def tune_impl(self, scope: Scope, *, seed: int | None = None) -> None:
        """Search randomly; ``seed`` makes the search reproducible (recorded in the run log)."""
        await scope.evaluate_many(self._configs(scope))

    def _configs(self, scope: Scope) -> Iterator[dict[str, Any]]:
        if self.start_config is not None and self.start_score is None:
            yield dict(self.start_config)
        count = scope.remaining
        drawn = 0
        while drawn < count or math.isinf(count):
            yield scope.space.sample(scope.rng)
            drawn += 1
