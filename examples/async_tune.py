"""Tune an ``async def`` evaluation from inside an event loop, and cancel a run.

An ``async def`` eval_fn runs on the event loop itself, ``num_workers`` calls at a time, which
suits evaluations that wait on I/O, such as a request to a remote service. The stand-in here
sleeps 50 ms. From the repository root:

    python examples/async_tune.py
"""

# An example reports its results with print, which the library itself never uses.
# ruff: noqa: T201

from __future__ import annotations

from typing import Any

import anyio

from async_tuner import RandomTuner, TrialStatus

SEARCH_SPACE = {
    "learning_rate": {"range": (1e-4, 1e-1), "log": True},
    "batch_size": {"range": (16, 256), "type": int},
}
REQUEST_S = 0.05  # simulated duration of one remote evaluation
CANCEL_AFTER_S = 0.5


async def evaluate(config: dict[str, Any]) -> float:
    """Score a configuration as a remote service would, after a simulated request."""
    await anyio.sleep(REQUEST_S)
    learning_rate: float = config["learning_rate"]
    batch_size: int = config["batch_size"]
    return abs(learning_rate - 0.01) + abs(batch_size - 64) / 1000


async def main() -> None:
    """Run one search to the end, then one that the caller cancels."""
    tuner = RandomTuner(
        SEARCH_SPACE, evaluate, maximize=False, budget=200, num_workers=20, show_loading=False
    )
    start = anyio.current_time()
    result = await tuner.tune_async(seed=0)
    elapsed = anyio.current_time() - start
    print(f"200 evaluations of {REQUEST_S} s each, 20 at a time, took {elapsed:.2f} s")
    print(f"best score {result.best_score:.4f} with {result.best_config}")

    # A cancelled run cancels its running evaluations and raises the cancellation, which
    # move_on_after catches here. The trials that finished stay in tuner.trials.
    tuner = RandomTuner(
        SEARCH_SPACE, evaluate, maximize=False, budget=10_000, num_workers=20, show_loading=False
    )
    with anyio.move_on_after(CANCEL_AFTER_S):
        await tuner.tune_async(seed=0)
    finished = [trial for trial in tuner.trials if trial.status is not TrialStatus.RUNNING]
    print(f"cancelled after {CANCEL_AFTER_S} s with {len(finished)} finished trials")


if __name__ == "__main__":
    anyio.run(main)
