"""Measure the engine's overhead, parallel efficiency and worker utilisation, next to Optuna.

Run from the repository root, in an environment with async_tuner and optuna installed:

    python benchmarks/bench_engine.py

This is a script run by hand, not a test. It prints the machine and three Markdown tables:

1. Overhead: microseconds per trial that a tuner adds to a plain Python loop, for 2,000
   trials of a function that returns at once. The plain loop draws each configuration with
   ``random.Random.uniform``, calls the function and keeps the best score, which is the least
   work any tuner must do. Each figure is (tuner time - loop time) / trials, from the median
   of the repetitions, and includes the tuner's fixed start-up cost spread over the trials.
   A last row measures the same calls on a bare asyncio loop and 2 threads, with no tuner,
   and a line after the table gives the fixed cost of one ``tune()`` call.
2. Parallel efficiency: ideal time / wall time for 400 trials of a function that sleeps
   20 ms, with 8 workers. The ideal is 400 * 0.02 s / 8 = 1.0 s.
3. Worker utilisation of hyperband: busy worker-seconds / (workers * wall time), with 8
   workers, for a function that sleeps ``resource * uniform(1, 3)`` ms, next to the
   utilisation of a simulated ideal scheduler with the same rung barriers.

Progress bars and run logs are off everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import heapq
import logging
import os
import platform
import queue
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import anyio
import optuna

import async_tuner
from async_tuner import HyperbandTuner, RandomTuner

SEARCH_SPACE = {"x": {"range": (0.0, 1.0)}}

OVERHEAD_TRIALS = 2000
OVERHEAD_REPETITIONS = 7

SLEEP_TRIALS = 400
SLEEP_S = 0.020  # duration of one trial in the parallel-efficiency measurement
SLEEP_WORKERS = 8
SLEEP_REPETITIONS = 3

HYPERBAND_WORKERS = 8
HYPERBAND_MAX_ITER = 81
HYPERBAND_ETA = 3
HYPERBAND_MS_PER_RESOURCE = (1.0, 3.0)  # a trial sleeps resource * uniform(low, high) ms
HYPERBAND_REPETITIONS = 3

STARTUP_REPETITIONS = 51

MICROSECONDS_PER_SECOND = 1e6
MILLISECONDS_PER_SECOND = 1e3


def objective(config: dict[str, Any]) -> float:
    """Return the configuration's x: the trivial function of the overhead measurement."""
    x: float = config["x"]
    return x


def sleeping_objective(config: dict[str, Any]) -> float:
    """Sleep 20 ms in the calling thread and return x."""
    time.sleep(SLEEP_S)
    x: float = config["x"]
    return x


async def async_sleeping_objective(config: dict[str, Any]) -> float:
    """Sleep 20 ms on the event loop and return x."""
    await anyio.sleep(SLEEP_S)
    x: float = config["x"]
    return x


# ----------------------------------------------------------------------------- timing


def median_seconds(run: Callable[[], object], repetitions: int) -> float:
    """Return the median wall time of ``repetitions`` calls of ``run``, after one warm-up call."""
    run()
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_loop(trials: int) -> None:
    """Draw ``trials`` configurations, call ``objective`` on each and keep the best score."""
    rng = random.Random(0)
    best = -float("inf")
    for _ in range(trials):
        score = objective({"x": rng.uniform(0.0, 1.0)})
        if score > best:
            best = score


def tune_inline(trials: int) -> None:
    """Run ``RandomTuner.tune()`` with one thread worker: evaluations run on the loop's thread."""
    RandomTuner(SEARCH_SPACE, objective, budget=trials, show_loading=False).tune(seed=0)


def tune_threads(trials: int) -> None:
    """Run ``RandomTuner.tune()`` on a pool of 2 worker threads."""
    tuner = RandomTuner(SEARCH_SPACE, objective, budget=trials, num_workers=2, show_loading=False)
    tuner.tune(seed=0)


def tune_async_threads(trials: int, backend: str) -> None:
    """Run ``await RandomTuner.tune_async()`` on ``backend`` with 2 worker threads."""
    tuner = RandomTuner(SEARCH_SPACE, objective, budget=trials, num_workers=2, show_loading=False)

    async def main() -> None:
        await tuner.tune_async(seed=0)

    anyio.run(main, backend=backend)


def bare_thread_round_trips(trials: int, workers: int) -> None:
    """Send each call to one of ``workers`` threads and await its result, with no tuner.

    This is the least a thread pool driven by an asyncio loop costs per call: a queue put that
    wakes a worker thread, and ``call_soon_threadsafe`` that wakes the loop again.
    """
    calls: queue.SimpleQueue[tuple[asyncio.Future[float], dict[str, Any]] | None]
    calls = queue.SimpleQueue()

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def serve() -> None:
            while (call := calls.get()) is not None:
                future, config = call
                loop.call_soon_threadsafe(future.set_result, objective(config))

        threads = [threading.Thread(target=serve, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        rng = random.Random(0)
        remaining = iter(range(trials))

        async def submit() -> None:
            for _ in remaining:
                future: asyncio.Future[float] = loop.create_future()
                calls.put((future, {"x": rng.uniform(0.0, 1.0)}))
                await future

        await asyncio.gather(*(submit() for _ in range(workers)))
        for _ in threads:
            calls.put(None)

    asyncio.run(main())


def optuna_random(trials: int, n_jobs: int = 1, sleep: bool = False) -> None:
    """Run an Optuna study with ``RandomSampler`` on the same function."""
    chosen = sleeping_objective if sleep else objective

    def optuna_objective(trial: optuna.Trial) -> float:
        return chosen({"x": trial.suggest_float("x", 0.0, 1.0)})

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(optuna_objective, n_trials=trials, n_jobs=n_jobs)


def measure_overhead() -> list[tuple[str, float]]:
    """Return (row label, microseconds per trial over the plain loop) for each tuner."""
    loop = median_seconds(lambda: plain_loop(OVERHEAD_TRIALS), OVERHEAD_REPETITIONS)
    candidates: list[tuple[str, Callable[[], object]]] = [
        ("async_tuner `tune()`, inline (1 worker)", lambda: tune_inline(OVERHEAD_TRIALS)),
        ("async_tuner `tune()`, 2 threads", lambda: tune_threads(OVERHEAD_TRIALS)),
        (
            "async_tuner `await tune_async()`, 2 threads, asyncio",
            lambda: tune_async_threads(OVERHEAD_TRIALS, "asyncio"),
        ),
        (
            "async_tuner `await tune_async()`, 2 threads, trio",
            lambda: tune_async_threads(OVERHEAD_TRIALS, "trio"),
        ),
        ("Optuna `RandomSampler`, in-memory storage", lambda: optuna_random(OVERHEAD_TRIALS)),
        (
            "no tuner: asyncio loop and 2 threads, one round trip per call (the floor of a "
            "thread pool)",
            lambda: bare_thread_round_trips(OVERHEAD_TRIALS, 2),
        ),
    ]
    rows = [
        ("plain loop (absolute time per trial)", loop / OVERHEAD_TRIALS * MICROSECONDS_PER_SECOND)
    ]
    for label, run in candidates:
        elapsed = median_seconds(run, OVERHEAD_REPETITIONS)
        rows.append((label, (elapsed - loop) / OVERHEAD_TRIALS * MICROSECONDS_PER_SECOND))
    return rows


def measure_startup() -> float:
    """Return the median wall time in ms of a ``tune()`` call that runs one inline trial."""
    seconds = median_seconds(lambda: tune_inline(1), STARTUP_REPETITIONS)
    return seconds * MILLISECONDS_PER_SECOND


# ----------------------------------------------------------------------------- parallelism


def measure_parallel_efficiency() -> list[tuple[str, float, float]]:
    """Return (row label, median wall time in s, efficiency) for each tuner."""
    ideal = SLEEP_TRIALS * SLEEP_S / SLEEP_WORKERS

    def threads() -> None:
        RandomTuner(
            SEARCH_SPACE,
            sleeping_objective,
            budget=SLEEP_TRIALS,
            num_workers=SLEEP_WORKERS,
            show_loading=False,
        ).tune(seed=0)

    def event_loop() -> None:
        RandomTuner(
            SEARCH_SPACE,
            async_sleeping_objective,
            budget=SLEEP_TRIALS,
            num_workers=SLEEP_WORKERS,
            show_loading=False,
        ).tune(seed=0)

    candidates: list[tuple[str, Callable[[], object]]] = [
        ("async_tuner, 8 threads", threads),
        ("async_tuner, `async def` eval_fn, 8 in flight", event_loop),
        (
            "Optuna `RandomSampler`, `n_jobs=8`",
            lambda: optuna_random(SLEEP_TRIALS, n_jobs=SLEEP_WORKERS, sleep=True),
        ),
    ]
    rows = []
    for label, run in candidates:
        wall = median_seconds(run, SLEEP_REPETITIONS)
        rows.append((label, wall, ideal / wall))
    return rows


class BusyClock:
    """Sum of the time that the evaluations spent sleeping, safe to add to from any thread."""

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.busy_s = 0.0

    def evaluate(self, config: dict[str, Any], resource: int) -> float:
        """Sleep ``resource * uniform(1, 3)`` ms and return x."""
        low, high = HYPERBAND_MS_PER_RESOURCE
        with self._lock:
            duration_s = resource * self._rng.uniform(low, high) / 1000
        start = time.perf_counter()
        time.sleep(duration_s)
        elapsed = time.perf_counter() - start
        with self._lock:
            self.busy_s += elapsed
        x: float = config["x"]
        return x


def fifo_schedule_wall_s(trials: list[async_tuner.Trial], workers: int) -> float:
    """Return the wall time of the same trials under an ideal scheduler with no overhead.

    The simulated scheduler keeps hyperband's rung barriers: a bracket's rung is queued only
    when the bracket's previous rung has finished. Brackets start in schedule order (most
    configurations first), queued trials start first-in first-out on ``workers`` workers, and
    each trial takes the duration that the real run measured for it.
    """
    rungs: dict[int | None, dict[int | None, list[float]]] = {}
    for trial in trials:
        rungs.setdefault(trial.bracket, {}).setdefault(trial.rung, []).append(trial.duration or 0.0)
    brackets = {
        bracket: [by_rung[rung] for rung in sorted(by_rung, key=lambda rung: rung or 0)]
        for bracket, by_rung in rungs.items()
    }

    queued: collections.deque[tuple[int | None, int, float]] = collections.deque()
    unfinished: dict[int | None, int] = {}

    def queue_rung(bracket: int | None, rung: int) -> None:
        durations = brackets[bracket][rung]
        queued.extend((bracket, rung, duration) for duration in durations)
        unfinished[bracket] = len(durations)

    for bracket in sorted(brackets, key=lambda bracket: bracket or 0, reverse=True):
        queue_rung(bracket, 0)
    now = 0.0
    running: list[tuple[float, int, int | None, int]] = []  # (end, tie-break, bracket, rung)
    started = 0
    while queued or running:
        while queued and len(running) < workers:
            bracket, rung, duration = queued.popleft()
            heapq.heappush(running, (now + duration, started, bracket, rung))
            started += 1
        now, _, bracket, rung = heapq.heappop(running)
        unfinished[bracket] -= 1
        if unfinished[bracket] == 0 and rung + 1 < len(brackets[bracket]):
            queue_rung(bracket, rung + 1)
    return now


def measure_hyperband_utilisation() -> tuple[int, float, float, float, float]:
    """Return hyperband's trials, wall time (s), busy worker-seconds, utilisation and ideal.

    The ideal is the utilisation of an ideal scheduler with the same trial durations and rung
    barriers (see ``fifo_schedule_wall_s``), so the gap between the two is the engine's. The
    run with the median utilisation is returned.
    """
    schedule = HyperbandTuner.finite_horizon_hyperband_schedule(HYPERBAND_MAX_ITER, HYPERBAND_ETA)
    budget = HyperbandTuner.estimate_cost(schedule)
    results = []
    for repetition in range(HYPERBAND_REPETITIONS):
        clock = BusyClock(seed=repetition)
        tuner = HyperbandTuner(
            SEARCH_SPACE,
            clock.evaluate,
            budget=budget,
            num_workers=HYPERBAND_WORKERS,
            show_loading=False,
        )
        start = time.perf_counter()
        tuner.tune(max_iter=HYPERBAND_MAX_ITER, eta=HYPERBAND_ETA, seed=repetition)
        wall = time.perf_counter() - start
        utilisation = clock.busy_s / (HYPERBAND_WORKERS * wall)
        measured_s = sum(trial.duration or 0.0 for trial in tuner.trials)
        ideal_wall = fifo_schedule_wall_s(tuner.trials, HYPERBAND_WORKERS)
        ideal = measured_s / (HYPERBAND_WORKERS * ideal_wall)
        results.append((len(tuner.trials), wall, clock.busy_s, utilisation, ideal))
    return sorted(results, key=lambda result: result[3])[len(results) // 2]


# ----------------------------------------------------------------------------- report


def machine_description() -> str:
    """Return the CPU count, Python version and package versions of this run."""
    packages = ", ".join(f"{name} {version(name)}" for name in ("async_tuner", "anyio", "optuna"))
    return (
        f"nproc {os.cpu_count()}, {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()} {platform.machine()}, {packages}"
    )


def main() -> None:
    """Run the measurements and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--skip-hyperband", action="store_true", help="skip the hyperband utilisation table"
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(level=logging.WARNING)

    emit(f"Machine: {machine_description()}")
    emit(f"Command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")

    emit(f"\nOverhead, {OVERHEAD_TRIALS} trials, median of {OVERHEAD_REPETITIONS} runs:\n")
    emit("| tuner | us per trial over the plain loop |")
    emit("|---|---:|")
    for label, microseconds in measure_overhead():
        emit(f"| {label} | {microseconds:.1f} |")
    emit(
        f"\nFixed cost of one inline `tune()` call with 1 trial (event loop, signal handler, "
        f"run set-up), median of {STARTUP_REPETITIONS}: {measure_startup():.2f} ms"
    )

    emit(
        f"\nParallel efficiency, {SLEEP_TRIALS} trials of {SLEEP_S * 1000:.0f} ms, "
        f"{SLEEP_WORKERS} workers, median of {SLEEP_REPETITIONS} runs (ideal "
        f"{SLEEP_TRIALS * SLEEP_S / SLEEP_WORKERS:.2f} s):\n"
    )
    emit("| tuner | wall time (s) | efficiency |")
    emit("|---|---:|---:|")
    for label, wall, efficiency in measure_parallel_efficiency():
        emit(f"| {label} | {wall:.3f} | {efficiency:.3f} |")

    if not args.skip_hyperband:
        trials, wall, busy, utilisation, ideal = measure_hyperband_utilisation()
        low, high = HYPERBAND_MS_PER_RESOURCE
        emit(
            f"\nHyperband worker utilisation, max_iter={HYPERBAND_MAX_ITER}, "
            f"eta={HYPERBAND_ETA}, {HYPERBAND_WORKERS} threads, trial time resource * "
            f"uniform({low:g}, {high:g}) ms, median of {HYPERBAND_REPETITIONS} runs:\n"
        )
        emit(
            "| trials | wall time (s) | busy worker-seconds | utilisation | "
            "ideal scheduler, same rungs |"
        )
        emit("|---:|---:|---:|---:|---:|")
        emit(f"| {trials} | {wall:.3f} | {busy:.3f} | {utilisation:.3f} | {ideal:.3f} |")


def emit(text: str) -> None:
    """Print a line of the report at once, so a long run shows its progress."""
    print(text, flush=True)  # noqa: T201 - the report is this script's output


if __name__ == "__main__":
    main()
