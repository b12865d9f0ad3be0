"""Tests of the public surface: exports, the Tuner signature, tune(), options and validation."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import async_tuner
from async_tuner import (
    AsyncTunerError,
    CoordinateDescentTuner,
    GridTuner,
    HyperbandTuner,
    RandomTuner,
    ResumeError,
    Scope,
    SearchSpaceError,
    SuccessiveHalvingTuner,
    TrialStatus,
    Tuner,
    TuneResult,
)

SCRIPT_TIMEOUT_S = 30.0

DOCUMENTED_EXPORTS = {
    "AsyncTunerError",
    "CoordinateDescentTuner",
    "GridTuner",
    "HyperbandTuner",
    "RandomTuner",
    "ResumeError",
    "Scope",
    "SearchSpaceError",
    "SuccessiveHalvingTuner",
    "Trial",
    "TrialStatus",
    "TuneResult",
    "Tuner",
}

# The fourteen parameters of rekall.tuner.Tuner, in order; CALLABLE_DEFAULT marks score_fn and
# score_log_fn, whose default is a function that passes eval_fn's output through.
NO_DEFAULT = inspect.Parameter.empty
CALLABLE_DEFAULT = object()
ORIGINAL_PARAMETERS = [
    ("search_space", NO_DEFAULT),
    ("eval_fn", NO_DEFAULT),
    ("maximize", True),
    ("budget", 500),
    ("log", False),
    ("log_dir", None),
    ("run_dir", None),
    ("run_name", None),
    ("start_config", None),
    ("start_score", None),
    ("score_fn", CALLABLE_DEFAULT),
    ("score_log_fn", CALLABLE_DEFAULT),
    ("num_workers", 1),
    ("show_loading", True),
]
KEYWORD_ONLY_PARAMETERS = [
    ("executor", "thread"),
    ("trial_timeout", None),
    ("time_budget", None),
    ("resume", False),
]
TUNER_CLASSES = [
    pytest.param(Tuner, id="Tuner"),
    pytest.param(RandomTuner, id="RandomTuner"),
    pytest.param(GridTuner, id="GridTuner"),
    pytest.param(CoordinateDescentTuner, id="CoordinateDescentTuner"),
    pytest.param(SuccessiveHalvingTuner, id="SuccessiveHalvingTuner"),
    pytest.param(HyperbandTuner, id="HyperbandTuner"),
]

# GridTuner with budget 4 on this range evaluates x = 10 * k / 5 for k = 1..4.
LINE = {"x": {"range": (0.0, 10.0)}}
LINE_BUDGET = 4
LINE_POINTS = [10.0 * k / (LINE_BUDGET + 1) for k in range(1, LINE_BUDGET + 1)]
UNIT_SPACE = {"x": {"range": (0.0, 1.0)}, "kind": ["a", "b"]}


def _score_x(config: dict[str, Any]) -> float:
    return float(config["x"])


async def _score_x_async(config: dict[str, Any]) -> float:
    return float(config["x"])


def _grid_tuner(eval_fn: Callable[..., Any] = _score_x, **kwargs: Any) -> GridTuner:
    kwargs.setdefault("show_loading", False)
    return GridTuner(LINE, eval_fn, budget=LINE_BUDGET, **kwargs)


class NeedsCount(Tuner):
    """A strategy with one required option, to test the check for missing options."""

    async def tune_impl(self, scope: Scope, *, count: int) -> None:
        await scope.evaluate_many(scope.space.sample(scope.rng) for _ in range(count))


# Exports


def test_all_is_documented_surface() -> None:
    assert set(async_tuner.__all__) == DOCUMENTED_EXPORTS


def test_all_has_no_duplicates() -> None:
    assert len(async_tuner.__all__) == len(set(async_tuner.__all__))


@pytest.mark.parametrize("name", sorted(DOCUMENTED_EXPORTS))
def test_all_names_are_attributes(name: str) -> None:
    assert hasattr(async_tuner, name)


def test_errors_share_library_base() -> None:
    assert issubclass(SearchSpaceError, AsyncTunerError)
    assert issubclass(ResumeError, AsyncTunerError)
    assert issubclass(SearchSpaceError, ValueError)


# Constructor signature


@pytest.mark.parametrize("tuner_class", TUNER_CLASSES)
def test_signature_original_parameter_order(tuner_class: type[Tuner]) -> None:
    parameters = list(inspect.signature(tuner_class).parameters.values())
    names = [parameter.name for parameter in parameters[: len(ORIGINAL_PARAMETERS)]]

    assert names == [name for name, _ in ORIGINAL_PARAMETERS]


@pytest.mark.parametrize("tuner_class", TUNER_CLASSES)
@pytest.mark.parametrize(
    ("name", "default"), ORIGINAL_PARAMETERS, ids=[name for name, _ in ORIGINAL_PARAMETERS]
)
def test_signature_original_parameter_default(
    tuner_class: type[Tuner], name: str, default: Any
) -> None:
    parameter = inspect.signature(tuner_class).parameters[name]

    assert parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    if default is CALLABLE_DEFAULT:
        output = object()
        assert parameter.default(output) is output
    else:
        assert parameter.default == default
        assert type(parameter.default) is type(default)


@pytest.mark.parametrize("tuner_class", TUNER_CLASSES)
def test_signature_keyword_only_tail(tuner_class: type[Tuner]) -> None:
    parameters = list(inspect.signature(tuner_class).parameters.values())
    tail = parameters[len(ORIGINAL_PARAMETERS) :]

    assert [parameter.name for parameter in tail] == [name for name, _ in KEYWORD_ONLY_PARAMETERS]
    assert all(parameter.kind is inspect.Parameter.KEYWORD_ONLY for parameter in tail)
    assert [parameter.default for parameter in tail] == [
        default for _, default in KEYWORD_ONLY_PARAMETERS
    ]


def test_signature_accepts_original_positional_call() -> None:
    tuner = RandomTuner(
        UNIT_SPACE, _score_x, False, 3, False, None, None, None, None, None, float, str, 2, False
    )

    assert tuner.maximize is False
    assert tuner.budget == 3
    assert tuner.num_workers == 2
    assert tuner.show_loading is False


# tune() and tune_async()


def _check_line_result(result: TuneResult) -> None:
    best_score, best_config, score_history, execution_times, total_cost = result

    assert best_score == pytest.approx(max(LINE_POINTS))
    assert best_config == {"x": pytest.approx(max(LINE_POINTS))}
    assert score_history == pytest.approx(LINE_POINTS)
    assert len(execution_times) == LINE_BUDGET
    assert total_cost == LINE_BUDGET


def _check_named_fields(result: TuneResult) -> None:
    best_score, best_config, score_history, execution_times, total_cost = result

    assert result.best_score == best_score
    assert result.best_config == best_config
    assert result.score_history == score_history
    assert result.execution_times == execution_times
    assert result.total_cost == total_cost


def test_tune_result_unpacks_into_five() -> None:
    result = _grid_tuner().tune()

    assert isinstance(result, TuneResult)
    assert len(result) == 5
    _check_line_result(result)


def test_tune_result_named_fields() -> None:
    _check_named_fields(_grid_tuner().tune())


@pytest.mark.anyio
@pytest.mark.parametrize(
    "eval_fn",
    [pytest.param(_score_x, id="sync"), pytest.param(_score_x_async, id="async")],
)
async def test_tune_async_result_unpacks(eval_fn: Callable[..., Any]) -> None:
    result = await _grid_tuner(eval_fn).tune_async()

    assert isinstance(result, TuneResult)
    _check_line_result(result)
    _check_named_fields(result)


@pytest.mark.parametrize(
    "eval_fn",
    [pytest.param(_score_x, id="sync"), pytest.param(_score_x_async, id="async")],
)
def test_tune_inside_running_loop(eval_fn: Callable[..., Any]) -> None:
    async def notebook_cell() -> TuneResult:
        return RandomTuner(UNIT_SPACE, eval_fn, budget=6, show_loading=False).tune(seed=11)

    expected_scores = [
        config["x"] for config in RandomTuner.generate_configs(UNIT_SPACE, 6, seed=11)
    ]
    inside = asyncio.run(notebook_cell())
    outside = RandomTuner(UNIT_SPACE, eval_fn, budget=6, show_loading=False).tune(seed=11)

    assert inside.score_history == expected_scores
    assert inside.score_history == outside.score_history
    assert inside.best_score == outside.best_score
    assert inside.best_config == outside.best_config
    assert inside.total_cost == outside.total_cost


# Strategy options


def test_random_tune_seed_option() -> None:
    expected = [config["x"] for config in RandomTuner.generate_configs(UNIT_SPACE, 5, seed=3)]

    result = RandomTuner(UNIT_SPACE, _score_x, budget=5, show_loading=False).tune(seed=3)

    assert result.score_history == expected


@pytest.mark.parametrize(
    ("tuner_class", "option"),
    [
        pytest.param(RandomTuner, "seeed", id="random-misspelled-seed"),
        pytest.param(RandomTuner, "alpha", id="random-foreign-option"),
        pytest.param(GridTuner, "seed", id="grid-seed"),
    ],
)
def test_tune_unknown_option_rejected(tuner_class: type[Tuner], option: str) -> None:
    calls: list[dict[str, Any]] = []
    tuner = tuner_class(UNIT_SPACE, calls.append, budget=3, show_loading=False)

    with pytest.raises(TypeError, match=repr(option)):
        tuner.tune(**{option: 1})

    assert calls == []


@pytest.mark.anyio
async def test_tune_async_unknown_option_rejected() -> None:
    tuner = RandomTuner(UNIT_SPACE, _score_x, budget=3, show_loading=False)

    with pytest.raises(TypeError, match="'sed'"):
        await tuner.tune_async(sed=1)


def test_tune_missing_option_rejected() -> None:
    calls: list[dict[str, Any]] = []
    tuner = NeedsCount(UNIT_SPACE, calls.append, budget=3, show_loading=False)

    with pytest.raises(TypeError, match="'count'"):
        tuner.tune()

    assert calls == []


def test_tune_required_option_given() -> None:
    result = NeedsCount(UNIT_SPACE, _score_x, budget=5, show_loading=False).tune(count=2)

    assert result.total_cost == 2


def test_base_tuner_is_not_strategy() -> None:
    with pytest.raises(NotImplementedError, match="RandomTuner"):
        Tuner(UNIT_SPACE, _score_x, show_loading=False).tune()


# Constructor validation


async def _async_eval(config: dict[str, Any]) -> float:
    return 0.0


BAD_ARGUMENTS = [
    pytest.param({"budget": -3}, ValueError, ["budget", "-3"], id="negative-budget"),
    pytest.param({"budget": 0}, ValueError, ["budget", "0"], id="zero-budget"),
    pytest.param({"budget": "10"}, TypeError, ["budget", "'10'"], id="str-budget"),
    pytest.param({"num_workers": 0}, ValueError, ["num_workers", "0"], id="zero-workers"),
    pytest.param({"num_workers": True}, TypeError, ["num_workers", "True"], id="bool-workers"),
    pytest.param({"num_workers": 2.5}, TypeError, ["num_workers", "2.5"], id="float-workers"),
    pytest.param({"executor": "gpu"}, ValueError, ["executor", "'gpu'"], id="unknown-executor"),
    pytest.param({"maximize": "yes"}, TypeError, ["maximize", "'yes'"], id="str-maximize"),
    pytest.param({"show_loading": 1}, TypeError, ["show_loading", "1"], id="int-show-loading"),
    pytest.param({"log": "yes"}, TypeError, ["log", "'yes'"], id="str-log"),
    pytest.param({"score_fn": 3}, TypeError, ["score_fn", "3"], id="score-fn-not-callable"),
    pytest.param({"trial_timeout": -1}, ValueError, ["trial_timeout", "-1"], id="neg-timeout"),
    pytest.param({"time_budget": 0}, ValueError, ["time_budget", "0"], id="zero-time-budget"),
    pytest.param({"resume": True}, ValueError, ["resume", "log"], id="resume-without-log"),
    pytest.param({"resume": "yes"}, ValueError, ["resume", "'yes'"], id="resume-bad-value"),
    pytest.param({"start_score": 0.5}, ValueError, ["start_score"], id="score-without-config"),
    pytest.param(
        {"start_config": {"x": 0.5, "kind": "a", "z": 1}},
        SearchSpaceError,
        ["start_config", "'z'"],
        id="start-config-unknown-key",
    ),
    pytest.param(
        {"start_config": {"x": 7.5, "kind": "a"}},
        SearchSpaceError,
        ["start_config", "'x'", "7.5"],
        id="start-config-out-of-range",
    ),
    pytest.param(
        {"start_config": {"x": 0.5, "kind": "c"}},
        SearchSpaceError,
        ["start_config", "'kind'", "'c'"],
        id="start-config-unknown-choice",
    ),
    pytest.param(
        {"start_config": {"x": 0.5}},
        SearchSpaceError,
        ["start_config", "'kind'"],
        id="start-config-missing-key",
    ),
    pytest.param(
        {"start_config": {"x": 0.5, "kind": "a"}, "start_score": "high"},
        TypeError,
        ["start_score", "'high'"],
        id="start-score-not-number",
    ),
]


@pytest.mark.parametrize(("arguments", "error", "fragments"), BAD_ARGUMENTS)
def test_constructor_invalid_argument_rejected(
    arguments: dict[str, Any], error: type[Exception], fragments: list[str]
) -> None:
    with pytest.raises(error) as caught:
        RandomTuner(UNIT_SPACE, _score_x, **{"show_loading": False, **arguments})

    for fragment in fragments:
        assert fragment in str(caught.value)


def test_constructor_async_eval_with_process_rejected() -> None:
    with pytest.raises(ValueError, match="process") as caught:
        RandomTuner(UNIT_SPACE, _async_eval, executor="process", show_loading=False)

    assert "async" in str(caught.value)


def test_constructor_eval_fn_not_callable_rejected() -> None:
    with pytest.raises(TypeError, match="eval_fn"):
        RandomTuner(UNIT_SPACE, "score", show_loading=False)  # type: ignore[arg-type]


def test_constructor_invalid_search_space_rejected() -> None:
    with pytest.raises(SearchSpaceError, match="'x'"):
        RandomTuner({"x": {"ragne": (0, 1)}}, _score_x, show_loading=False)


# TrialStatus


@pytest.mark.parametrize(
    ("status", "word"),
    [
        pytest.param(TrialStatus.OK, "ok", id="ok"),
        pytest.param(TrialStatus.FAILED, "failed", id="failed"),
        pytest.param(TrialStatus.TIMED_OUT, "timed_out", id="timed-out"),
        pytest.param(TrialStatus.RUNNING, "running", id="running"),
    ],
)
def test_trial_status_equals_its_word(status: TrialStatus, word: str) -> None:
    assert status == word
    assert str(status) == word
    assert TrialStatus(word) is status


# Output


def test_show_loading_false_writes_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    def sometimes_fails(config: dict[str, Any]) -> float:
        if config["kind"] == "b":
            raise ValueError("kind b is broken")
        return float(config["x"])

    RandomTuner(UNIT_SPACE, sometimes_fails, budget=6, num_workers=2, show_loading=False).tune(
        seed=4
    )
    out, err = capfd.readouterr()

    assert out == ""
    assert err == ""


def test_show_loading_true_writes_bar_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    budget = 5

    RandomTuner(UNIT_SPACE, _score_x, budget=budget, show_loading=True).tune(seed=4)
    out, err = capfd.readouterr()

    assert out == ""
    assert f"{budget}/{budget}" in err
    assert "RandomTuner" in err


@pytest.mark.slow
def test_script_without_logging_config_prints_nothing(tmp_path: Path) -> None:
    script = tmp_path / "quiet.py"
    script.write_text(
        textwrap.dedent(
            """
            from async_tuner import GridTuner, RandomTuner

            space = {"x": {"range": (0.0, 1.0)}, "kind": ["a", "b"]}
            RandomTuner(space, lambda c: c["x"], budget=4, show_loading=False).tune(seed=1)
            RandomTuner(
                space, lambda c: c["x"], budget=4, num_workers=2, show_loading=False
            ).tune(seed=1)
            GridTuner(space, lambda c: c["x"], budget=4, show_loading=False).tune()
            """
        )
    )

    completed = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )

    assert completed.returncode == 0
    assert completed.stdout == ""
    assert completed.stderr == ""
