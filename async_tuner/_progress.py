"""The progress bar: cost spent against the budget, with the best score in the postfix."""

from __future__ import annotations

from typing import Any


class Progress:
    """A tqdm bar over the budget, or nothing when ``enabled`` is false."""

    def __init__(self, budget: float, *, enabled: bool, description: str) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=budget, desc=description, unit="cost", dynamic_ncols=True)

    def advance(self, cost: float) -> None:
        """Add a finished trial's cost."""
        if self._bar is not None:
            self._bar.update(cost)

    def show_best(self, score: float) -> None:
        """Put a new best score in the postfix."""
        if self._bar is not None:
            self._bar.set_postfix(best=f"{score:.6g}", refresh=False)

    def close(self) -> None:
        """Close the bar, leaving its last state on screen."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
