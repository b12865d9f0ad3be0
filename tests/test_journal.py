"""Tests of the run log: run.json, log.txt, trials.jsonl, tuner_report.json and read_trials."""

from __future__ import annotations

import datetime
import gc
import json
import logging
import math
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from async_tuner import GridTuner, RandomTuner, ResumeError, Scope, Tuner, TuneResult
from async_tuner._journal import read_trials

# Generous bound for a short tuning script; it fails the test only if the run hangs.
SCRIPT_TIMEOUT_S = 3.0
THREAD_EXIT_WAIT_S = 2.0

SPACE = {"x": {"range": (0.0, 1.0)}, "kind": ["a", "b", "c"]}
RUN_FILES = ["run.json", "log.txt", "trials.jsonl", "tuner_report.json"]
TRIAL_KEYS = {
    "trial_id",
    "config",
    "score",
    "logged",
    "status",
    "error",
    "started_at",
    "finished_at",
    "duration",
}
REPORT_KEYS = {"best_score", "best_config", "scores", "execution_times", "cost"}
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
TIME_PATTERN = re.compile(r"\d{2}-\d{2}-\d{2}(-\d+)?")


def _score_or_fail(config: dict[str, Any]) -> float:
    if config["kind"] == "b":
        raise ValueError("kind b is not supported")
    return float(config["x"])


def _logged_tuner(log_dir: Path, eval_fn: Any = _score_or_fail, **kwargs: Any) -> RandomTuner:
    kwargs.setdefault("budget", 8)
    kwargs.setdefault("run_dir", "study")
    kwargs.setdefault("run_name", "first")
    kwargs.setdefault("show_loading", False)
    return RandomTuner(SPACE, eval_fn, log=True, log_dir=log_dir, **kwargs)


def _reject_constant(name: str) -> Any:
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


def _strict_json(text: str) -> Any:
    """Parse ``text`` as standard JSON, which has no NaN or Infinity."""
    return json.loads(text, parse_constant=_reject_constant)


def _journal(run_path: Path) -> list[dict[str, Any]]:
    lines = (run_path / "trials.jsonl").read_text(encoding="utf-8").splitlines()
    return [_strict_json(line) for line in lines]


def _log_lines(run_path: Path) -> list[str]:
    return (run_path / "log.txt").read_text(encoding="utf-8").splitlines()


# Files of a run


@pytest.mark.parametrize("name", RUN_FILES)
def test_log_writes_run_file(tmp_path: Path, name: str) -> None:
    _logged_tuner(tmp_path).tune(seed=1)

    assert (tmp_path / "study" / "first" / name).is_file()


def test_log_path_set(tmp_path: Path) -> None:
    tuner = _logged_tuner(tmp_path)
    tuner.tune(seed=1)

    assert tuner.log_path == tmp_path / "study" / "first"


def test_log_run_closes_its_streams(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _logged_tuner(tmp_path).tune(seed=1)
        gc.collect()

    assert [str(warning.message) for warning in caught] == []


@pytest.mark.parametrize(
    ("num_workers", "executor"),
    [
        pytest.param(1, "thread", id="inline"),
        pytest.param(3, "thread", id="thread"),
        pytest.param(2, "process", id="process"),
    ],
)
def test_log_run_leaves_no_threads(tmp_path: Path, num_workers: int, executor: str) -> None:
    before = set(threading.enumerate())

    _logged_tuner(tmp_path, num_workers=num_workers, executor=executor).tune(seed=1)
    deadline = time.monotonic() + THREAD_EXIT_WAIT_S
    for thread in threading.enumerate():
        if thread not in before:
            thread.join(max(0.0, deadline - time.monotonic()))

    assert [thread for thread in threading.enumerate() if thread not in before] == []


def test_log_false_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    RandomTuner(SPACE, _score_or_fail, budget=4, show_loading=False).tune(seed=1)

    assert list(tmp_path.iterdir()) == []


def test_log_run_json_describes_run(tmp_path: Path) -> None:
    _logged_tuner(tmp_path, maximize=False).tune(seed=7)

    info = _strict_json((tmp_path / "study" / "first" / "run.json").read_text(encoding="utf-8"))

    assert info["strategy"] == "RandomTuner"
    assert info["options"] == {"seed": 7}
    assert info["maximize"] is False


# log.txt


def test_log_header_names_strategy_and_options(tmp_path: Path) -> None:
    _logged_tuner(tmp_path, budget=6).tune(seed=7)

    header = _log_lines(tmp_path / "study" / "first")[0]

    assert "RandomTuner" in header
    assert '"seed": 7' in header
    assert "budget=6" in header


@pytest.mark.parametrize(
    "maximize", [pytest.param(True, id="maximize"), pytest.param(False, id="minimize")]
)
def test_log_new_best_lines(tmp_path: Path, maximize: bool) -> None:
    expected_configs = RandomTuner.generate_configs(SPACE, 12, seed=3)
    improvements: list[float] = []
    for config in expected_configs:
        score = config["x"]
        better = not improvements or (
            score > improvements[-1] if maximize else score < improvements[-1]
        )
        if better:
            improvements.append(score)

    # One worker on the inline path, so trials finish in submission order.
    _logged_tuner(tmp_path, _score_x, budget=12, maximize=maximize).tune(seed=3)
    best_lines = [line for line in _log_lines(tmp_path / "study" / "first") if "new best" in line]

    assert len(best_lines) == len(improvements)
    for line, score in zip(best_lines, improvements, strict=True):
        assert repr(score) in line


def _score_x(config: dict[str, Any]) -> float:
    return float(config["x"])


class NarratingStrategy(Tuner):
    """A strategy that writes log messages between two batches."""

    async def tune_impl(self, scope: Scope) -> None:
        scope.log_msg("phase one: two random configs")
        await scope.evaluate_many(scope.space.sample(scope.rng) for _ in range(2))
        self.log_msg("phase two: two more")
        await scope.evaluate_many(scope.space.sample(scope.rng) for _ in range(2))


def test_log_msg_from_strategy(tmp_path: Path) -> None:
    tuner = NarratingStrategy(
        SPACE,
        _score_x,
        budget=4,
        log=True,
        log_dir=tmp_path,
        run_dir="study",
        run_name="first",
        show_loading=False,
    )
    tuner.tune()
    lines = _log_lines(tmp_path / "study" / "first")

    messages = [line for line in lines if "phase" in line]

    assert len(messages) == 2
    assert messages[0].endswith("phase one: two random configs")
    assert messages[1].endswith("phase two: two more")


LOG_MSG_SCRIPT = """
import json
import sys
import time

import anyio

from async_tuner import RandomTuner

backend, log_dir = sys.argv[1], sys.argv[2]


def evaluate(config):
    time.sleep(0.01)
    tuner.log_msg("evaluating kind " + config["kind"])
    time.sleep(0.01)
    return config["x"]


tuner = RandomTuner(
    {"x": {"range": (0.0, 1.0)}, "kind": ["a", "b", "c"]},
    evaluate,
    budget=4,
    log=True,
    log_dir=log_dir,
    run_dir="study",
    run_name="first",
    show_loading=False,
)
anyio.run(lambda: tuner.tune_async(seed=1), backend=backend)
print(json.dumps([trial.error for trial in tuner.trials]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "asyncio_debug"),
    [
        pytest.param("asyncio", False, id="asyncio"),
        pytest.param("asyncio", True, id="asyncio-debug"),
        pytest.param("trio", False, id="trio"),
    ],
)
def test_log_msg_from_eval_fn_thread(tmp_path: Path, backend: str, asyncio_debug: bool) -> None:
    script = tmp_path / "log_msg_script.py"
    script.write_text(textwrap.dedent(LOG_MSG_SCRIPT))
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONASYNCIODEBUG"}
    if asyncio_debug:
        environment["PYTHONASYNCIODEBUG"] = "1"

    try:
        completed = subprocess.run(
            [sys.executable, str(script), backend, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
            env=environment,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the run did not finish within {SCRIPT_TIMEOUT_S} s")
    messages = [line for line in _log_lines(tmp_path / "study" / "first") if "evaluating" in line]

    assert completed.returncode == 0
    assert json.loads(completed.stdout) == [None] * 4
    assert len(messages) == 4


# trials.jsonl


def _run_with_nan(tmp_path: Path) -> tuple[RandomTuner, list[dict[str, Any]]]:
    def score(config: dict[str, Any]) -> float:
        if config["kind"] == "c":
            return math.nan
        return _score_or_fail(config)

    tuner = _logged_tuner(tmp_path, score, budget=10, num_workers=3)
    tuner.tune(seed=4)
    return tuner, _journal(tmp_path / "study" / "first")


def test_journal_line_per_finished_trial(tmp_path: Path) -> None:
    tuner, records = _run_with_nan(tmp_path)

    assert len(records) == 10
    assert sorted(record["trial_id"] for record in records) == sorted(
        trial.trial_id for trial in tuner.trials
    )


def test_journal_record_fields(tmp_path: Path) -> None:
    _, records = _run_with_nan(tmp_path)

    for record in records:
        assert set(record) >= TRIAL_KEYS


def test_journal_records_match_trials(tmp_path: Path) -> None:
    expected = {
        index: config for index, config in enumerate(RandomTuner.generate_configs(SPACE, 10, 4))
    }
    tuner, records = _run_with_nan(tmp_path)
    position = {trial.trial_id: index for index, trial in enumerate(tuner.trials)}

    for record in records:
        config = expected[position[record["trial_id"]]]
        assert record["config"] == config
        if config["kind"] == "b":
            assert record["status"] == "failed"
            assert record["error"] == "ValueError: kind b is not supported"
            assert record["score"] is None
        else:
            assert record["status"] == "ok"
            assert record["error"] is None
        if config["kind"] == "a":
            assert record["score"] == config["x"]
            assert record["logged"] == config["x"]
        assert record["started_at"] <= record["finished_at"]
        assert record["duration"] >= 0


def test_journal_stores_score_log_fn_value(tmp_path: Path) -> None:
    expected = RandomTuner.generate_configs(SPACE, 5, seed=5)

    tuner = _logged_tuner(
        tmp_path,
        lambda c: {"accuracy": c["x"], "loss": 1.0 - c["x"]},
        budget=5,
        score_fn=lambda output: output["accuracy"],
        score_log_fn=lambda output: {"loss": output["loss"]},
    )
    tuner.tune(seed=5)
    records = sorted(_journal(tmp_path / "study" / "first"), key=lambda r: r["trial_id"])

    assert [record["logged"] for record in records] == [
        {"loss": 1.0 - config["x"]} for config in expected
    ]
    assert [record["score"] for record in records] == [config["x"] for config in expected]


def test_journal_converts_numpy_and_tuples(tmp_path: Path) -> None:
    space = {"count": [np.int64(1), np.int64(2)], "x": {"range": (0.0, 1.0)}}

    def evaluate(config: dict[str, Any]) -> dict[str, Any]:
        return {"score": np.float32(config["count"]), "x": np.float64(config["x"])}

    tuner = RandomTuner(
        space,
        evaluate,
        budget=4,
        score_fn=lambda output: output["score"],
        score_log_fn=lambda output: {
            "pair": (1, 2),
            "array": np.arange(3),
            "x": output["x"],
            "flag": np.bool_(True),
        },
        log=True,
        log_dir=tmp_path,
        run_dir="study",
        run_name="first",
        show_loading=False,
    )
    result = tuner.tune(seed=6)
    run_path = tmp_path / "study" / "first"
    records = sorted(_journal(run_path), key=lambda record: record["trial_id"])
    report = _strict_json((run_path / "tuner_report.json").read_text(encoding="utf-8"))

    assert [record["status"] for record in records] == ["ok"] * 4
    for record in records:
        assert record["logged"] == {
            "pair": [1, 2],
            "array": [0, 1, 2],
            "x": record["config"]["x"],
            "flag": True,
        }
        assert type(record["config"]["count"]) is int
        assert type(record["score"]) is float
    assert report["scores"] == result.score_history


@pytest.mark.parametrize(
    ("space", "types"),
    [
        pytest.param(
            {
                "count": [1, 2, 3],
                "x": {"range": (0.0, 2.0)},
                "n": {"range": (1, 5), "type": int},
                "rate": {"range": (1e-3, 1.0), "log": True},
                "name": ["a", "b"],
            },
            {"count": int, "x": float, "n": int, "rate": float, "name": str},
            id="python-values",
        ),
        pytest.param(
            {"count": [np.int64(1), np.int64(2)], "weight": [np.float64(1.0), np.float32(2.0)]},
            {"count": int, "weight": float},
            id="numpy-values",
        ),
    ],
)
@pytest.mark.parametrize(
    ("strategy", "options"),
    [
        pytest.param(RandomTuner, {"seed": 7}, id="random"),
        # The grid's midpoint of x in (0.0, 2.0) is 1.0, a float with an integral value.
        pytest.param(GridTuner, {}, id="grid"),
    ],
)
def test_journal_round_trip_keeps_types(
    tmp_path: Path,
    space: dict[str, Any],
    types: dict[str, type],
    strategy: type[Tuner],
    options: dict[str, Any],
) -> None:
    strategy(
        space,
        lambda config: 0.0,
        budget=8,
        log=True,
        log_dir=tmp_path,
        run_dir="study",
        run_name="first",
        show_loading=False,
    ).tune(**options)
    run_path = tmp_path / "study" / "first"
    report = _strict_json((run_path / "tuner_report.json").read_text(encoding="utf-8"))

    for record in _journal(run_path):
        assert {name: type(value) for name, value in record["config"].items()} == types
    assert {name: type(value) for name, value in report["best_config"].items()} == types


# tuner_report.json


def _report(run_path: Path) -> dict[str, Any]:
    report: dict[str, Any] = _strict_json(
        (run_path / "tuner_report.json").read_text(encoding="utf-8")
    )
    return report


def _check_report(report: dict[str, Any], result: TuneResult) -> None:
    assert set(report) == REPORT_KEYS
    assert report["best_score"] == result.best_score
    assert report["best_config"] == result.best_config
    assert report["scores"] == result.score_history
    assert report["execution_times"] == result.execution_times
    assert report["cost"] == result.total_cost


@pytest.mark.parametrize("num_workers", [pytest.param(1, id="inline"), pytest.param(3, id="pool")])
def test_report_equals_result(tmp_path: Path, num_workers: int) -> None:
    result = _logged_tuner(tmp_path, num_workers=num_workers).tune(seed=8)

    _check_report(_report(tmp_path / "study" / "first"), result)


def test_report_when_all_trials_fail(tmp_path: Path) -> None:
    def always_fails(config: dict[str, Any]) -> float:
        raise RuntimeError("no score")

    result = _logged_tuner(tmp_path, always_fails, budget=3).tune(seed=9)
    report = _report(tmp_path / "study" / "first")

    _check_report(report, result)
    assert report["best_score"] is None


# Run folders


def _today_candidates() -> set[str]:
    return {datetime.date.today().isoformat()}


def test_log_default_run_dir_and_name(tmp_path: Path) -> None:
    dates = _today_candidates()
    tuner = RandomTuner(SPACE, _score_x, budget=3, log=True, log_dir=tmp_path, show_loading=False)
    tuner.tune(seed=10)
    dates |= _today_candidates()

    run_dirs = list(tmp_path.iterdir())
    assert len(run_dirs) == 1
    assert run_dirs[0].name in dates
    runs = list(run_dirs[0].iterdir())
    assert len(runs) == 1
    assert TIME_PATTERN.fullmatch(runs[0].name)
    assert (runs[0] / "trials.jsonl").is_file()
    assert tuner.log_path == runs[0]


def test_log_default_run_names_distinct(tmp_path: Path) -> None:
    for seed in (11, 12):
        RandomTuner(
            SPACE, _score_x, budget=2, log=True, log_dir=tmp_path, run_dir="day", show_loading=False
        ).tune(seed=seed)

    runs = sorted((tmp_path / "day").iterdir())

    assert len(runs) == 2
    for run in runs:
        assert len(_journal(run)) == 2


def test_log_dir_defaults_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    RandomTuner(
        SPACE, _score_x, budget=2, log=True, run_dir="study", run_name="first", show_loading=False
    ).tune(seed=13)

    assert (tmp_path / "study" / "first" / "run.json").is_file()


def test_log_same_run_name_rejected(tmp_path: Path) -> None:
    _logged_tuner(tmp_path, budget=3).tune(seed=14)
    run_path = tmp_path / "study" / "first"
    journal_before = (run_path / "trials.jsonl").read_bytes()
    calls: list[dict[str, Any]] = []

    with pytest.raises(ResumeError, match="resume=True"):
        _logged_tuner(tmp_path, calls.append, budget=3).tune(seed=14)

    assert calls == []
    assert (run_path / "trials.jsonl").read_bytes() == journal_before


# read_trials


def _journal_lines(count: int) -> list[bytes]:
    return [
        json.dumps({"trial_id": index, "status": "ok", "score": index / 10}).encode() + b"\n"
        for index in range(count)
    ]


@pytest.mark.parametrize(
    "torn",
    [
        pytest.param(b'{"trial_id": 2, "status": "o', id="half-object"),
        pytest.param(b'{"trial_id": 2, "status": "ok"}', id="object-without-newline"),
        pytest.param(b'{"trial_id": 2, "sta\n', id="garbage-with-newline"),
    ],
)
def test_read_trials_skips_torn_last_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, torn: bytes
) -> None:
    whole = _journal_lines(2)
    path = tmp_path / "trials.jsonl"
    path.write_bytes(b"".join(whole) + torn)

    with caplog.at_level(logging.WARNING, logger="async_tuner"):
        records, valid_length = read_trials(path)

    assert [record["trial_id"] for record in records] == [0, 1]
    assert valid_length == len(b"".join(whole))
    assert any("torn" in message for message in caplog.messages)


def test_read_trials_whole_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    whole = _journal_lines(3)
    path = tmp_path / "trials.jsonl"
    path.write_bytes(b"".join(whole))

    with caplog.at_level(logging.WARNING, logger="async_tuner"):
        records, valid_length = read_trials(path)

    assert [record["trial_id"] for record in records] == [0, 1, 2]
    assert valid_length == path.stat().st_size
    assert caplog.messages == []


def test_read_trials_invalid_middle_line_rejected(tmp_path: Path) -> None:
    lines = _journal_lines(3)
    path = tmp_path / "trials.jsonl"
    path.write_bytes(lines[0] + b"not json\n" + lines[2])

    with pytest.raises(ResumeError, match="line 2"):
        read_trials(path)
