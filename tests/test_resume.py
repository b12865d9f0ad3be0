"""Tests of resume: a run stopped partway continues from its log to the uninterrupted result.

Every run is compared with a reference run of the same strategy and options that was never
stopped. Each eval_fn appends its calls to a file, so that a test can count what a resumed run
evaluated.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from async_tuner import (
    CoordinateDescentTuner,
    GridTuner,
    HyperbandTuner,
    RandomTuner,
    ResumeError,
    SuccessiveHalvingTuner,
    Tuner,
    TuneResult,
)

SPACE = {
    "x": {"range": (0.0, 1.0)},
    "kind": ["a", "b", "c"],
    "n": {"range": (1, 20), "type": int},
}
KIND_BONUS = {"a": 0.0, "b": 0.3, "c": -0.2}
RUN_DIR = "study"
RUN_NAME = "run"

# Generous bounds for the subprocess test; each fails it only if the script hangs.
READY_DEADLINE_S = 20.0
POLL_INTERVAL_S = 0.02
HANG_S = 300.0


def score(config: dict[str, Any], resource: int | None = None) -> float:
    """Score a config, or raise for one corner of the space so that logs contain failed trials."""
    if config["kind"] == "c" and config["n"] % 5 == 0:
        msg = f"no score for n={config['n']} with kind c"
        raise ValueError(msg)
    value = math.sin(5.0 * config["x"]) + KIND_BONUS[config["kind"]] + 0.01 * config["n"]
    if resource is not None:
        value += 0.1 * math.log(resource) * math.cos(3.0 * config["x"])
    return value


def _call_key(config: dict[str, Any], resource: int | None) -> str:
    return json.dumps({"config": config, "resource": resource}, sort_keys=True)


def _calls(path: Path) -> Counter[str]:
    """Count the calls recorded in ``path``, by config and resource."""
    if not path.exists():
        return Counter()
    return Counter(path.read_text(encoding="utf-8").splitlines())


def _logged_calls(run_path: Path) -> Counter[str]:
    """Count the trials in a run's journal, by config and resource."""
    lines = (run_path / "trials.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    return Counter(_call_key(record["config"], record["resource"]) for record in records)


class CallLog:
    """An eval_fn that appends each call to a file and can stop the run at a given call.

    ``stop`` is called, instead of the evaluation, on call number ``stop_at`` (counted from 1)
    and on every call after it.
    """

    def __init__(
        self,
        path: Path,
        *,
        stop_at: int | None = None,
        stop: Callable[[], Any] | None = None,
    ) -> None:
        self.path = path
        self.stop_at = stop_at
        self.stop = stop
        self.count = 0
        self._lock = threading.Lock()

    def record(self, config: dict[str, Any], resource: int | None) -> bool:
        """Record a call; return whether the run must stop instead of evaluating it."""
        with self._lock:
            self.count += 1
            if self.stop_at is not None and self.count >= self.stop_at:
                return True
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(_call_key(config, resource) + "\n")
        return False

    def __call__(self, config: dict[str, Any], resource: int | None = None) -> float:
        if self.record(config, resource) and self.stop is not None:
            self.stop()
        return score(config, resource)


class AsyncCallLog(CallLog):
    """A CallLog whose evaluation is ``async def``, so ``stop`` can cancel a scope."""

    async def __call__(  # type: ignore[override]
        self, config: dict[str, Any], resource: int | None = None
    ) -> float:
        if self.record(config, resource) and self.stop is not None:
            self.stop()
            await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        return score(config, resource)


def _raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


@dataclass(frozen=True)
class Case:
    """A deterministic strategy with options for a run that the budget does not cut short."""

    tuner_class: type[Tuner]
    options: dict[str, Any]
    budget: int


CASES = {
    "random": Case(RandomTuner, {"seed": 5}, 30),
    "grid": Case(GridTuner, {}, 27),
    "coordinate_descent": Case(
        CoordinateDescentTuner, {"alpha": 0.2, "decay_rate": 0.5, "seed": 1}, 40
    ),
    "successive_halving": Case(
        SuccessiveHalvingTuner, {"eta": 3, "N": 3, "K": 9, "T": 1, "seed": 2}, 200
    ),
    "hyperband": Case(HyperbandTuner, {"max_iter": 9, "eta": 3, "seed": 4}, 300),
}
STRATEGIES = [pytest.param(case, id=name) for name, case in CASES.items()]


def _tuner(case: Case, eval_fn: Callable[..., Any], tmp_path: Path | None, **kwargs: Any) -> Tuner:
    kwargs.setdefault("budget", case.budget)
    kwargs.setdefault("show_loading", False)
    if tmp_path is not None:
        kwargs.update(log=True, log_dir=tmp_path, run_dir=RUN_DIR, run_name=RUN_NAME)
    return case.tuner_class(SPACE, eval_fn, **kwargs)


@dataclass
class Reference:
    """An uninterrupted run: its result and its calls."""

    result: TuneResult
    calls: Counter[str]


def _reference(case: Case, tmp_path: Path, **kwargs: Any) -> Reference:
    calls_path = tmp_path / "reference_calls.txt"
    result = _tuner(case, CallLog(calls_path), None, **kwargs).tune(**case.options)
    return Reference(result, _calls(calls_path))


def _check_resumed(
    resumed: TuneResult,
    reference: Reference,
    logged_before: Counter[str],
    resumed_calls: Counter[str],
) -> None:
    """Assert that a resumed run matches the reference and evaluated only what was missing."""
    assert resumed.best_score == reference.result.best_score
    assert resumed.best_config == reference.result.best_config
    assert resumed.score_history == reference.result.score_history
    assert resumed.total_cost == reference.result.total_cost
    assert resumed_calls == reference.calls - logged_before
    assert sum(resumed_calls.values()) == sum(reference.calls.values()) - logged_before.total()


# Interrupted by an exception or a cancellation, then resumed


@pytest.mark.parametrize("case", STRATEGIES)
def test_resume_after_keyboard_interrupt(case: Case, tmp_path: Path) -> None:
    # One thread worker without a timeout evaluates inline, where a KeyboardInterrupt from
    # eval_fn stops the run as Ctrl-C would.
    reference = _reference(case, tmp_path)
    stop_at = reference.calls.total() // 2 + 1
    interrupted = CallLog(tmp_path / "calls.txt", stop_at=stop_at, stop=_raise_keyboard_interrupt)
    run_path = tmp_path / RUN_DIR / RUN_NAME

    with pytest.raises(KeyboardInterrupt):
        _tuner(case, interrupted, tmp_path).tune(**case.options)
    logged_before = _logged_calls(run_path)
    resumed_log = CallLog(tmp_path / "resumed_calls.txt")
    resumed = _tuner(case, resumed_log, tmp_path, resume=True).tune(**case.options)

    assert logged_before.total() == stop_at - 1
    _check_resumed(resumed, reference, logged_before, _calls(resumed_log.path))


@pytest.mark.anyio
@pytest.mark.parametrize("case", STRATEGIES)
async def test_resume_after_cancellation(case: Case, tmp_path: Path) -> None:
    # Three workers, so trials are in flight when the run is cancelled, and those run again.
    num_workers = 3
    reference = _reference(case, tmp_path, num_workers=num_workers)
    stop_at = reference.calls.total() // 2 + 1
    run_path = tmp_path / RUN_DIR / RUN_NAME

    with anyio.CancelScope() as scope:
        interrupted = AsyncCallLog(tmp_path / "calls.txt", stop_at=stop_at, stop=scope.cancel)
        await _tuner(case, interrupted, tmp_path, num_workers=num_workers).tune_async(
            **case.options
        )
    logged_before = _logged_calls(run_path)
    resumed_log = AsyncCallLog(tmp_path / "resumed_calls.txt")
    resumed = await _tuner(
        case, resumed_log, tmp_path, num_workers=num_workers, resume=True
    ).tune_async(**case.options)

    assert scope.cancelled_caught
    assert 0 < logged_before.total() < stop_at
    _check_resumed(resumed, reference, logged_before, _calls(resumed_log.path))


# Interrupted by kill -9 of the tuning process

KILLED_BUDGET = 24
KILLED_SEED = 11
KILLED_FINISHED = 9  # calls that finish before every later one hangs
KILLED_NUM_WORKERS = 2


def run_until_killed(calls_path: str, log_dir: str) -> None:
    """Run the seeded random search of the kill -9 test; calls after KILLED_FINISHED hang.

    The killed subprocess runs this, so it and the test share ``score``.
    """
    lock = threading.Lock()
    count = 0

    def evaluate(config: dict[str, Any]) -> float:
        nonlocal count
        with lock:
            count += 1
            hang = count > KILLED_FINISHED
            if not hang:
                with open(calls_path, "a", encoding="utf-8") as file:
                    file.write(_call_key(config, None) + "\n")
        if hang:
            time.sleep(HANG_S)
        return score(config)

    RandomTuner(
        SPACE,
        evaluate,
        budget=KILLED_BUDGET,
        num_workers=KILLED_NUM_WORKERS,
        log=True,
        log_dir=log_dir,
        run_dir=RUN_DIR,
        run_name=RUN_NAME,
        show_loading=False,
    ).tune(seed=KILLED_SEED)


KILLED_SCRIPT = """
import sys

sys.path.insert(0, sys.argv[1])
import test_resume

test_resume.run_until_killed(sys.argv[2], sys.argv[3])
"""


@pytest.fixture
def killed_run(tmp_path: Path) -> Iterator[Path]:
    """Run the kill -9 test's script until KILLED_FINISHED trials are in its journal, then
    kill it; return the run's folder."""
    script = tmp_path / "killed_script.py"
    script.write_text(KILLED_SCRIPT, encoding="utf-8")
    journal = tmp_path / RUN_DIR / RUN_NAME / "trials.jsonl"
    tests_dir = str(Path(__file__).parent)
    arguments = [tests_dir, str(tmp_path / "calls.txt"), str(tmp_path)]
    with open(tmp_path / "stderr.txt", "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(script), *arguments], stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while not (journal.exists() and journal.read_bytes().count(b"\n") >= KILLED_FINISHED):
            if time.monotonic() > deadline or process.poll() is not None:
                stderr_text = (tmp_path / "stderr.txt").read_text(errors="replace")
                pytest.fail(f"the script made no progress; its stderr:\n{stderr_text}")
            time.sleep(POLL_INTERVAL_S)
        process.send_signal(signal.SIGKILL)
        process.wait()
        yield tmp_path / RUN_DIR / RUN_NAME
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_resume_after_sigkill(killed_run: Path, tmp_path: Path) -> None:
    reference_path = tmp_path / "reference_calls.txt"
    reference_result = RandomTuner(
        SPACE, CallLog(reference_path), budget=KILLED_BUDGET, show_loading=False
    ).tune(seed=KILLED_SEED)
    reference = Reference(reference_result, _calls(reference_path))
    logged_before = _logged_calls(killed_run)
    resumed_log = CallLog(tmp_path / "resumed_calls.txt")

    resumed = RandomTuner(
        SPACE,
        resumed_log,
        budget=KILLED_BUDGET,
        num_workers=KILLED_NUM_WORKERS,
        log=True,
        log_dir=tmp_path,
        run_dir=RUN_DIR,
        run_name=RUN_NAME,
        resume=True,
        show_loading=False,
    ).tune(seed=KILLED_SEED)

    assert logged_before == _calls(tmp_path / "calls.txt")
    assert logged_before.total() == KILLED_FINISHED
    _check_resumed(resumed, reference, logged_before, _calls(resumed_log.path))


# A torn last line


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda line: line[: len(line) // 2], id="half-line"),
        pytest.param(lambda line: line[:-1], id="newline-only"),
    ],
)
def test_resume_cuts_torn_last_line(
    cut: Callable[[bytes], bytes], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = CASES["random"]
    budget = 10
    reference = _reference(case, tmp_path, budget=budget)
    run_path = tmp_path / RUN_DIR / RUN_NAME
    journal = run_path / "trials.jsonl"
    _tuner(case, CallLog(tmp_path / "first_calls.txt"), tmp_path, budget=budget).tune(
        **case.options
    )
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:-1]) + cut(lines[-1]))
    kept_calls = Counter(_call_key(json.loads(line)["config"], None) for line in lines[:-1])
    caplog.set_level(logging.WARNING, logger="async_tuner")

    resumed_log = CallLog(tmp_path / "resumed_calls.txt")
    resumed = _tuner(case, resumed_log, tmp_path, budget=budget, resume=True).tune(**case.options)
    text = journal.read_text(encoding="utf-8")

    assert any("torn" in record.getMessage() for record in caplog.records)
    assert text.endswith("\n")
    assert len(text.splitlines()) == budget
    for line in text.splitlines():
        assert isinstance(json.loads(line), dict)
    _check_resumed(resumed, reference, kept_calls, _calls(resumed_log.path))


# Budget, seed and a finished run


def _interrupt_after(case: Case, tmp_path: Path, finished: int, **kwargs: Any) -> Counter[str]:
    """Run ``case`` on the inline path until ``finished`` calls, then stop it with a
    KeyboardInterrupt; return the calls in its journal."""
    interrupted = CallLog(
        tmp_path / "calls.txt", stop_at=finished + 1, stop=_raise_keyboard_interrupt
    )
    with pytest.raises(KeyboardInterrupt):
        _tuner(case, interrupted, tmp_path, **kwargs).tune(**case.options)
    return _logged_calls(tmp_path / RUN_DIR / RUN_NAME)


def test_resume_budget_caps_whole_run(tmp_path: Path) -> None:
    case = CASES["random"]
    finished = 7
    logged_before = _interrupt_after(case, tmp_path, finished)
    resumed_log = CallLog(tmp_path / "resumed_calls.txt")

    resumed = _tuner(case, resumed_log, tmp_path, resume=True).tune(**case.options)

    assert logged_before.total() == finished
    assert _calls(resumed_log.path).total() == case.budget - finished
    assert resumed.total_cost == case.budget


def test_resume_larger_budget_continues(tmp_path: Path) -> None:
    case = CASES["random"]
    first_budget, second_budget = 10, 16
    reference = _reference(case, tmp_path, budget=second_budget)
    _tuner(case, CallLog(tmp_path / "first_calls.txt"), tmp_path, budget=first_budget).tune(
        **case.options
    )
    logged_before = _logged_calls(tmp_path / RUN_DIR / RUN_NAME)
    resumed_log = CallLog(tmp_path / "resumed_calls.txt")

    resumed = _tuner(case, resumed_log, tmp_path, budget=second_budget, resume=True).tune(
        **case.options
    )

    assert logged_before.total() == first_budget
    _check_resumed(resumed, reference, logged_before, _calls(resumed_log.path))


def test_resume_finished_run_evaluates_nothing(tmp_path: Path) -> None:
    case = CASES["successive_halving"]
    reference = _reference(case, tmp_path)
    _tuner(case, CallLog(tmp_path / "first_calls.txt"), tmp_path).tune(**case.options)
    logged_before = _logged_calls(tmp_path / RUN_DIR / RUN_NAME)
    resumed_log = CallLog(tmp_path / "resumed_calls.txt")

    resumed = _tuner(case, resumed_log, tmp_path, resume=True).tune(**case.options)

    assert logged_before == reference.calls
    assert _calls(resumed_log.path).total() == 0
    _check_resumed(resumed, reference, logged_before, _calls(resumed_log.path))


def test_resume_reuses_logged_seed(tmp_path: Path) -> None:
    # Neither run passes a seed: the first draws one and logs it, and the resumed run uses it.
    case = Case(RandomTuner, {}, 20)
    logged_before = _interrupt_after(case, tmp_path, 8)
    run_info = json.loads((tmp_path / RUN_DIR / RUN_NAME / "run.json").read_text())
    seed = run_info["options"]["seed"]
    reference = _reference(Case(RandomTuner, {"seed": seed}, case.budget), tmp_path)
    resumed_log = CallLog(tmp_path / "resumed_calls.txt")

    resumed = _tuner(case, resumed_log, tmp_path, resume=True).tune()

    assert isinstance(seed, int)
    _check_resumed(resumed, reference, logged_before, _calls(resumed_log.path))


# resume="auto"


def test_resume_auto_starts_fresh(tmp_path: Path) -> None:
    case = CASES["random"]
    reference = _reference(case, tmp_path)
    calls = CallLog(tmp_path / "calls.txt")

    result = _tuner(case, calls, tmp_path, resume="auto").tune(**case.options)

    _check_resumed(result, reference, Counter(), _calls(calls.path))
    assert _logged_calls(tmp_path / RUN_DIR / RUN_NAME) == reference.calls


def test_resume_auto_continues(tmp_path: Path) -> None:
    case = CASES["grid"]
    reference = _reference(case, tmp_path)
    logged_before = _interrupt_after(case, tmp_path, 10)
    resumed_log = CallLog(tmp_path / "resumed_calls.txt")

    resumed = _tuner(case, resumed_log, tmp_path, resume="auto").tune(**case.options)

    _check_resumed(resumed, reference, logged_before, _calls(resumed_log.path))


# Resuming another run, or nothing


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    """Log a short finished random search and return its folder."""
    _tuner(CASES["random"], CallLog(tmp_path / "first_calls.txt"), tmp_path, budget=5).tune(seed=1)
    return tmp_path / RUN_DIR / RUN_NAME


CHANGES = [
    pytest.param(
        "search_space",
        {"search_space": {**SPACE, "x": {"range": (0.0, 2.0)}}},
        {"seed": 1},
        id="search_space",
    ),
    pytest.param("strategy", {"tuner_class": GridTuner}, {}, id="strategy"),
    pytest.param("options", {}, {"seed": 2}, id="options"),
    pytest.param("maximize", {"maximize": False}, {"seed": 1}, id="maximize"),
]


@pytest.mark.parametrize(("changed_key", "changes", "options"), CHANGES)
def test_resume_changed_run_rejected(
    changed_key: str, changes: dict[str, Any], options: dict[str, Any], finished_run: Path
) -> None:
    journal_before = (finished_run / "trials.jsonl").read_bytes()
    calls: list[dict[str, Any]] = []
    tuner_class = changes.pop("tuner_class", RandomTuner)
    search_space = changes.pop("search_space", SPACE)
    tuner = tuner_class(
        search_space,
        lambda config: calls.append(config) or 0.0,
        budget=5,
        log=True,
        log_dir=finished_run.parent.parent,
        run_dir=RUN_DIR,
        run_name=RUN_NAME,
        resume=True,
        show_loading=False,
        **changes,
    )

    with pytest.raises(ResumeError, match=changed_key):
        tuner.tune(**options)

    assert calls == []
    assert (finished_run / "trials.jsonl").read_bytes() == journal_before


def test_resume_true_without_logged_run(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    tuner = RandomTuner(
        SPACE,
        lambda config: calls.append(config) or 0.0,
        log=True,
        log_dir=tmp_path,
        run_dir=RUN_DIR,
        run_name=RUN_NAME,
        resume=True,
        show_loading=False,
    )

    with pytest.raises(ResumeError, match=RUN_NAME):
        tuner.tune(seed=1)

    assert calls == []


def test_run_folder_in_use_rejected(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "runs" / "busy"
    folder.mkdir(parents=True)
    # A live process other than this one: the parent of the test process.
    (folder / "run.lock").write_text(str(os.getppid()))
    tuner = RandomTuner(
        {"x": {"range": (0.0, 1.0)}},
        lambda config: config["x"],
        budget=3,
        log=True,
        log_dir=tmp_path,
        run_dir="runs",
        run_name="busy",
        resume="auto",
        show_loading=False,
    )

    with pytest.raises(ResumeError, match="in use by another run"):
        tuner.tune(seed=1)


def test_stale_run_lock_taken_over(tmp_path: Path) -> None:
    import subprocess
    import sys

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    folder = tmp_path / "runs" / "stale"
    folder.mkdir(parents=True)
    (folder / "run.lock").write_text(finished.stdout.strip())
    tuner = RandomTuner(
        {"x": {"range": (0.0, 1.0)}},
        lambda config: config["x"],
        budget=3,
        log=True,
        log_dir=tmp_path,
        run_dir="runs",
        run_name="stale",
        resume="auto",
        show_loading=False,
    )

    result = tuner.tune(seed=1)

    assert result.total_cost == 3
    assert not (folder / "run.lock").exists()
