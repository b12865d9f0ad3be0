"""Grid search."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .._engine import Tuner
from .._run import Scope
from .._space import SearchSpace


class GridTuner(Tuner):
    """Evaluate a grid that covers the search space as densely as the budget allows.

    Each range gets ``n`` evenly spaced interior points ``low + k * (high - low) / (n + 1)``,
    ``k = 1..n`` (in log space for log ranges), and the ranges gain one point each in turn while
    the cross-product with the discrete choices fits the budget. Unlike the original, a space
    with discrete parameters only terminates, and no more configurations than the budget are
    made.

    Example:
        >>> space = {"x": {"range": (0.0, 1.0)}, "kind": ["a", "b"]}
        >>> GridTuner.generate_configs(space, 4)  # doctest: +NORMALIZE_WHITESPACE
        [{'x': 0.5, 'kind': 'a'}, {'x': 0.5, 'kind': 'b'}]
    """

    @classmethod
    def generate_configs(
        cls, search_space: Mapping[str, Any] | SearchSpace, budget: int
    ) -> list[dict[str, Any]]:
        """Return the grid for ``budget`` evaluations, in the order of the search space's keys."""
        space = (
            search_space
            if isinstance(search_space, SearchSpace)
            else SearchSpace.from_dict(search_space)
        )
        return space.grid(budget)

    async def tune_impl(self, scope: Scope) -> None:
        """Evaluate the grid."""
        budget = scope.remaining
        count = int(budget) if math.isfinite(budget) else int(self.budget)
        if count < 1:
            return
        await scope.evaluate_many(scope.space.grid(count))
