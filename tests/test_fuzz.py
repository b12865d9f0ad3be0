"""Tests of bad input and failed trials: errors are loud, early and of the documented types.

Example tests check each documented misuse; Hypothesis properties then throw random malformed
search spaces, constructor arguments and strategy options at the library, and run random valid
search spaces through every strategy.
"""

from __future__ import annotations

import gc
import math
import weakref
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from fractions import Fraction
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from async_tuner import (
    CoordinateDescentTuner,
    GridTuner,
    HyperbandTuner,
    RandomTuner,
    SuccessiveHalvingTuner,
    Trial,
    TrialStatus,
    Tuner,
)
from async_tuner._space import SearchSpace

SPACE = {"x": {"range": (0.0, 1.0)}}
RUN_DEADLINE_S = 10.0  # a fuzzed run that takes longer than this counts as a hang
ALLOWED_ERRORS = (TypeError, ValueError)  # SearchSpaceError and ResumeError are ValueErrors

FUZZ_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _score_x(config: dict[str, Any], resource: int | None = None) -> float:
    return float(config["x"])


class CountingEval:
    """An eval_fn that counts its calls; accepts a resource for the multi-fidelity strategies."""

    def __init__(self, output: Callable[[dict[str, Any]], Any] = _score_x) -> None:
        self.output = output
        self.calls = 0

    def __call__(self, config: dict[str, Any], resource: int | None = None) -> Any:
        self.calls += 1
        return self.output(config)


# Bad constructor arguments


@pytest.mark.parametrize(
    ("kwargs", "error", "shown"),
    [
        pytest.param({"budget": -3}, ValueError, ["budget", "-3"], id="negative-budget"),
        pytest.param({"budget": 0}, ValueError, ["budget", "0"], id="zero-budget"),
        pytest.param({"budget": math.nan}, ValueError, ["budget", "nan"], id="nan-budget"),
        pytest.param({"budget": "10"}, TypeError, ["budget", "'10'"], id="str-budget"),
        pytest.param({"num_workers": 0}, ValueError, ["num_workers", "0"], id="zero-workers"),
        pytest.param({"num_workers": -2}, ValueError, ["num_workers", "-2"], id="negative-workers"),
        pytest.param({"num_workers": 1.5}, TypeError, ["num_workers", "1.5"], id="float-workers"),
        pytest.param(
            {"executor": "threads"}, ValueError, ["executor", "'threads'"], id="executor-typo"
        ),
        pytest.param({"executor": "dask"}, ValueError, ["executor", "'dask'"], id="executor-dask"),
        pytest.param({"executor": None}, ValueError, ["executor", "None"], id="executor-none"),
        pytest.param(
            {"resume": True, "run_dir": "study", "run_name": "run"},
            ValueError,
            ["resume", "log=True"],
            id="resume-without-log",
        ),
        pytest.param(
            {"trial_timeout": -1.0}, ValueError, ["trial_timeout", "-1.0"], id="negative-timeout"
        ),
        pytest.param({"time_budget": 0}, ValueError, ["time_budget", "0"], id="zero-time-budget"),
    ],
)
def test_bad_argument_rejected(
    kwargs: dict[str, Any], error: type[Exception], shown: list[str]
) -> None:
    eval_fn = CountingEval()

    with pytest.raises(error) as raised:
        RandomTuner(SPACE, eval_fn, show_loading=False, **kwargs).tune(seed=1)
    message = str(raised.value)

    assert eval_fn.calls == 0
    for text in shown:
        assert text in message


@pytest.mark.parametrize("tuner_class", [SuccessiveHalvingTuner, HyperbandTuner])
@pytest.mark.parametrize("eta", [1, 0, -2])
def test_eta_below_two_rejected(tuner_class: type[Tuner], eta: int) -> None:
    options = (
        {"eta": eta, "N": 2, "K": 4, "T": 1}
        if tuner_class is SuccessiveHalvingTuner
        else {
            "eta": eta,
            "max_iter": 9,
        }
    )
    eval_fn = CountingEval()

    with pytest.raises(ValueError, match="eta") as raised:
        tuner_class(SPACE, eval_fn, show_loading=False).tune(**options)

    assert eval_fn.calls == 0
    assert f"got {eta}" in str(raised.value)


# Scores that are not real numbers


@pytest.mark.parametrize(
    "output",
    [
        pytest.param("0.5", id="str"),
        pytest.param(None, id="none"),
        pytest.param([0.5], id="list"),
        pytest.param({"score": 0.5}, id="dict"),
        pytest.param(complex(0.5, 1.0), id="complex"),
        pytest.param(True, id="bool"),
        pytest.param(Decimal("sNaN"), id="decimal-signalling-nan"),
        pytest.param(np.array([0.5]), id="numpy-array"),
    ],
)
def test_non_real_score_fails_trial(output: Any) -> None:
    tuner = RandomTuner(SPACE, CountingEval(lambda config: output), budget=2, show_loading=False)

    result = tuner.tune(seed=1)
    errors = [trial.error or "" for trial in tuner.trials]

    assert [trial.status for trial in tuner.trials] == [TrialStatus.FAILED] * 2
    assert result.best_score is None
    for error in errors:
        assert "eval_fn returned" in error
        assert type(output).__name__ in error
        assert "score_fn" in error


def test_non_real_score_from_score_fn_fails_trial() -> None:
    tuner = RandomTuner(
        SPACE,
        lambda config: {"loss": "low"},
        score_fn=lambda output: output["loss"],
        budget=2,
        show_loading=False,
    )

    tuner.tune(seed=1)
    errors = [trial.error or "" for trial in tuner.trials]

    assert [trial.status for trial in tuner.trials] == [TrialStatus.FAILED] * 2
    for error in errors:
        assert "score_fn returned 'low'" in error
        assert "str" in error


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        pytest.param(np.float32(0.5), 0.5, id="numpy-float32"),
        pytest.param(np.int64(3), 3.0, id="numpy-int64"),
        pytest.param(Fraction(1, 4), 0.25, id="fraction"),
        pytest.param(7, 7.0, id="int"),
    ],
)
def test_real_score_types_accepted(output: Any, expected: float) -> None:
    tuner = RandomTuner(SPACE, lambda config: output, budget=1, show_loading=False)

    result = tuner.tune(seed=1)

    assert result.best_score == expected
    assert type(tuner.trials[0].score) is float


# A failed trial keeps no frames


class Payload:
    """A large object that the failing evaluation's frame holds; weak references track it."""

    def __init__(self) -> None:
        self.data = bytearray(1_000_000)


def _failing_sync(alive: list[weakref.ref[Payload]]) -> Callable[[dict[str, Any]], float]:
    def evaluate(config: dict[str, Any]) -> float:
        payload = Payload()
        alive.append(weakref.ref(payload))
        raise ValueError(f"cannot score x={config['x']}")

    return evaluate


def _failing_async(alive: list[weakref.ref[Payload]]) -> Callable[[dict[str, Any]], Any]:
    async def evaluate(config: dict[str, Any]) -> float:
        payload = Payload()
        alive.append(weakref.ref(payload))
        await anyio.lowlevel.checkpoint()
        raise ValueError(f"cannot score x={config['x']}")

    return evaluate


def _failing_score_fn(alive: list[weakref.ref[Payload]]) -> Callable[[Any], float]:
    def score_fn(output: Any) -> float:
        payload = Payload()
        alive.append(weakref.ref(payload))
        raise ValueError(f"cannot score {output!r}")

    return score_fn


MEMORY_CASES = [
    pytest.param(_failing_sync, {}, id="inline"),
    pytest.param(_failing_sync, {"num_workers": 2}, id="thread"),
    pytest.param(_failing_sync, {"trial_timeout": 60.0}, id="thread-with-timeout"),
    pytest.param(_failing_async, {"num_workers": 2}, id="async"),
]


def _tune_with_gc_disabled(tuner: Tuner) -> None:
    gc.disable()
    try:
        tuner.tune(seed=1)
    finally:
        gc.enable()


def _check_text_only(trial: Trial) -> None:
    assert trial.status is TrialStatus.FAILED
    assert isinstance(trial.error, str)
    assert isinstance(trial.traceback, str)
    assert "ValueError: cannot score" in trial.error
    assert "Traceback" in trial.traceback
    for name in Trial.__slots__:
        value = getattr(trial, name)
        assert not isinstance(value, BaseException)


@pytest.mark.parametrize(("make_eval", "kwargs"), MEMORY_CASES)
def test_failed_trial_frees_frames(
    make_eval: Callable[[list[weakref.ref[Payload]]], Callable[..., Any]],
    kwargs: dict[str, Any],
) -> None:
    alive: list[weakref.ref[Payload]] = []
    tuner = RandomTuner(SPACE, make_eval(alive), budget=3, show_loading=False, **kwargs)

    _tune_with_gc_disabled(tuner)

    assert len(alive) == 3
    for reference in alive:
        assert reference() is None
    for trial in tuner.trials:
        _check_text_only(trial)


def test_failed_trial_frees_frames_user_executor() -> None:
    alive: list[weakref.ref[Payload]] = []
    with ThreadPoolExecutor(max_workers=2) as executor:
        tuner = RandomTuner(
            SPACE, _failing_sync(alive), budget=3, executor=executor, show_loading=False
        )
        _tune_with_gc_disabled(tuner)

    assert len(alive) == 3
    for reference in alive:
        assert reference() is None
    for trial in tuner.trials:
        _check_text_only(trial)


def test_failed_score_fn_frees_frames() -> None:
    alive: list[weakref.ref[Payload]] = []
    tuner = RandomTuner(
        SPACE, _score_x, score_fn=_failing_score_fn(alive), budget=3, show_loading=False
    )

    _tune_with_gc_disabled(tuner)

    assert len(alive) == 3
    for reference in alive:
        assert reference() is None
    for trial in tuner.trials:
        _check_text_only(trial)


# Fuzz: malformed input

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.fractions(max_denominator=10),
    # Signalling NaNs raise on comparison; test_resume_signalling_nan_rejected covers them.
    st.decimals(allow_nan=True, allow_infinity=True, places=3).filter(
        lambda value: not value.is_snan()
    ),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.binary(max_size=2),
    st.sampled_from([int, float, "int", "float", object(), Ellipsis, np.float64(0.5), np.int8(3)]),
    st.builds(np.array, st.lists(st.floats(-2, 2), max_size=3)),
)
# Values close to valid ones, so that inputs get past the first checks.
NUMBERS = st.one_of(
    st.integers(min_value=-3, max_value=12),
    st.floats(min_value=-2.0, max_value=2.0),
    st.sampled_from([0, 1, 0.0, 1.0, -0.0, 1e-300, 1e308, math.inf, math.nan]),
    st.sampled_from([np.float32(0.5), np.int64(2), Fraction(1, 3), True, False]),
)
CONTAINERS = st.one_of(
    st.lists(SCALARS, max_size=4),
    st.lists(SCALARS, max_size=4).map(tuple),
    st.frozensets(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
)
# An int too large for a float: the constructor's arguments are tested with it on their own.
BOUNDS = st.one_of(NUMBERS, SCALARS, st.just(10**400))
NEAR_VALID_RANGES = st.fixed_dictionaries(
    {"range": st.one_of(st.tuples(BOUNDS, BOUNDS), st.lists(BOUNDS, max_size=3), SCALARS)},
    optional={
        "log": st.one_of(st.booleans(), SCALARS),
        "type": st.one_of(st.sampled_from([int, float, "int", "float", "integer", bool]), SCALARS),
    },
)
ODD_RANGES = st.dictionaries(
    st.sampled_from(["range", "log", "type", "ragne", "Range", "low", 1, None]),
    st.one_of(SCALARS, CONTAINERS, st.tuples(BOUNDS, BOUNDS)),
    max_size=3,
)
PARAM_VALUES = st.one_of(
    NEAR_VALID_RANGES,
    ODD_RANGES,
    st.lists(st.one_of(NUMBERS, SCALARS), max_size=3),
    st.lists(st.one_of(NUMBERS, SCALARS), max_size=3).map(tuple),
    SCALARS,
    CONTAINERS,
)
PARAM_NAMES = st.one_of(
    st.text(min_size=1, max_size=4), st.text(max_size=1), st.integers(-2, 2), st.none()
)
MALFORMED_SPACES = st.dictionaries(PARAM_NAMES, PARAM_VALUES, max_size=3)


def _tune_briefly(tuner: Tuner, **options: Any) -> None:
    """Run ``tuner`` with ``options``; a run that outlives RUN_DEADLINE_S raises TimeoutError."""

    async def tune() -> None:
        with anyio.fail_after(RUN_DEADLINE_S):
            await tuner.tune_async(**options)

    anyio.run(tune)


@pytest.mark.parametrize(
    "search_space",
    [None, 3, "x", [("x", [1, 2])], {"x"}, np.array([1.0])],
    ids=["none", "int", "str", "list-of-pairs", "set", "numpy-array"],
)
def test_space_not_a_dict_rejected(search_space: Any) -> None:
    eval_fn = CountingEval()

    with pytest.raises(TypeError, match="search space must be a mapping"):
        RandomTuner(search_space, eval_fn, show_loading=False)

    assert eval_fn.calls == 0


@FUZZ_SETTINGS
@given(search_space=MALFORMED_SPACES)
def test_fuzz_malformed_space_errors(search_space: Any) -> None:
    eval_fn = CountingEval(lambda config: 0.0)
    try:
        tuner = RandomTuner(search_space, eval_fn, budget=3, show_loading=False)
    except ALLOWED_ERRORS as error:
        event(f"rejected with {type(error).__name__}")
        assert eval_fn.calls == 0
        return
    event("accepted")

    # The space was valid after all: a short run must work.
    _tune_briefly(tuner)


VALUE_POOL = st.one_of(
    SCALARS,
    NUMBERS,
    st.sampled_from(["thread", "process", "auto", "", True, False]),
    st.just(lambda output: 0.0),
    st.just(ThreadPoolExecutor),
    st.dictionaries(st.text(max_size=2), SCALARS, max_size=2),
    st.sampled_from([{"x": 0.5}, {"x": 2.0}, {"x": 0.5, "y": 1}, {}]),
)
CONSTRUCTOR_NAMES = [
    "maximize",
    "budget",
    "log",
    "log_dir",
    "run_dir",
    "run_name",
    "start_config",
    "start_score",
    "score_fn",
    "score_log_fn",
    "num_workers",
    "show_loading",
    "executor",
    "trial_timeout",
    "time_budget",
    "resume",
]


def _runnable(kwargs: dict[str, Any]) -> bool:
    """Whether a run with these accepted arguments is quick and touches no files."""
    return (
        not kwargs.get("log", False)
        and kwargs.get("executor", "thread") == "thread"
        and kwargs.get("budget", 500) <= 6
        and kwargs.get("num_workers", 1) <= 6
    )


@FUZZ_SETTINGS
@given(kwargs=st.dictionaries(st.sampled_from(CONSTRUCTOR_NAMES), VALUE_POOL, max_size=4))
def test_fuzz_constructor_arguments_errors(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("show_loading", False)
    eval_fn = CountingEval()
    try:
        tuner = RandomTuner(SPACE, eval_fn, **kwargs)
    except ALLOWED_ERRORS as error:
        event(f"rejected with {type(error).__name__}")
        assert eval_fn.calls == 0
        return
    event("accepted")

    # Accepted arguments must give a working run.
    if _runnable(kwargs):
        _tune_briefly(tuner)


INNER_TUNERS = [None, RandomTuner, GridTuner, CoordinateDescentTuner, int, "RandomTuner"]
PLAUSIBLE_OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "seed": st.one_of(st.none(), st.integers(min_value=-5, max_value=10**6)),
    "alpha": st.floats(min_value=-0.5, max_value=1.5),
    "decay_rate": st.floats(min_value=-0.5, max_value=1.5),
    "init_method": st.sampled_from(["average", "random", "fast"]),
    "line_search_budget": st.integers(min_value=-1, max_value=12),
    "randomize_param_order": st.booleans(),
    "eta": st.integers(min_value=-1, max_value=5),
    "N": st.integers(min_value=-1, max_value=5),
    "K": st.integers(min_value=-1, max_value=12),
    "T": st.integers(min_value=-1, max_value=5),
    "max_iter": st.integers(min_value=-1, max_value=30),
    "tuner": st.sampled_from(INNER_TUNERS),
    "tuner_params": st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["seed", "alpha", "decay_rate", "nope"]),
            st.one_of(NUMBERS, st.none()),
            max_size=3,
        ),
    ),
    "paper_sizes": st.booleans(),
}
# Sizes stay small, so that a valid run ends quickly; test_successive_halving_draws_within_budget
# covers large ones.
OPTION_VALUES = {
    name: st.one_of(plausible, plausible, NUMBERS, SCALARS)
    for name, plausible in PLAUSIBLE_OPTIONS.items()
}
REQUIRED_OPTIONS: dict[type[Tuner], list[str]] = {
    RandomTuner: [],
    GridTuner: [],
    CoordinateDescentTuner: ["alpha", "decay_rate"],
    SuccessiveHalvingTuner: ["eta", "N", "K", "T"],
    HyperbandTuner: ["max_iter", "eta"],
}
OTHER_OPTIONS: dict[type[Tuner], list[str]] = {
    RandomTuner: ["seed"],
    GridTuner: [],
    CoordinateDescentTuner: ["init_method", "line_search_budget", "randomize_param_order", "seed"],
    SuccessiveHalvingTuner: ["tuner", "tuner_params", "seed"],
    HyperbandTuner: ["tuner", "tuner_params", "paper_sizes", "seed"],
}


@st.composite
def _strategy_runs(draw: st.DrawFn) -> tuple[type[Tuner], dict[str, Any]]:
    """Draw a strategy and options for it: each option plausible or not, some missing, and
    now and then an unknown one."""
    tuner_class = draw(st.sampled_from(list(REQUIRED_OPTIONS)))
    required = {name: OPTION_VALUES[name] for name in REQUIRED_OPTIONS[tuner_class]}
    optional = {name: OPTION_VALUES[name] for name in OTHER_OPTIONS[tuner_class]}
    options = draw(st.fixed_dictionaries(required, optional=optional))
    if required and draw(st.integers(min_value=0, max_value=9)) == 0:
        del options[draw(st.sampled_from(sorted(required)))]
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        options["unknown_option"] = draw(SCALARS)
    return tuner_class, options


@FUZZ_SETTINGS
@given(run=_strategy_runs())
def test_fuzz_strategy_options_errors(run: tuple[type[Tuner], dict[str, Any]]) -> None:
    tuner_class, options = run
    eval_fn = CountingEval()
    tuner = tuner_class(SPACE, eval_fn, budget=6, show_loading=False)
    try:
        _tune_briefly(tuner, **options)
    except ALLOWED_ERRORS as error:
        event(f"{tuner_class.__name__} rejected with {type(error).__name__}")
        assert eval_fn.calls == 0
        return
    event(f"{tuner_class.__name__} accepted")


class TooManyDraws(Exception):
    """Raised when a strategy draws far more configs than its budget can evaluate."""


def test_successive_halving_draws_within_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = 6
    draw_limit = 10 * budget  # generous: drawing lazily needs at most budget + 1
    draws = 0
    sample = SearchSpace.sample

    def counting_sample(self: SearchSpace, rng: Any) -> dict[str, Any]:
        nonlocal draws
        draws += 1
        if draws > draw_limit:
            raise TooManyDraws(f"more than {draw_limit} configs drawn for a budget of {budget}")
        return sample(self, rng)

    monkeypatch.setattr(SearchSpace, "sample", counting_sample)
    tuner = SuccessiveHalvingTuner(SPACE, _score_x, budget=budget, show_loading=False)

    result = tuner.tune(eta=2, N=1, K=10**8, T=1)

    assert draws <= draw_limit
    assert result.total_cost == budget


def test_hyperband_huge_max_iter_small_budget() -> None:
    # The largest bracket of this schedule has 2**53 configs.
    budget = 6
    tuner = HyperbandTuner(SPACE, _score_x, budget=budget, show_loading=False)

    result = tuner.tune(max_iter=2**53, eta=2)

    assert 0 < result.total_cost <= budget


@pytest.mark.parametrize("name", ["budget", "trial_timeout", "time_budget"])
def test_int_too_large_for_float_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        RandomTuner(SPACE, _score_x, show_loading=False, **{name: 10**400})


def test_resume_signalling_nan_rejected() -> None:
    with pytest.raises(ValueError, match="resume"):
        RandomTuner(SPACE, _score_x, show_loading=False, resume=Decimal("sNaN"))


@pytest.mark.parametrize(
    ("tuner_class", "options"),
    [
        pytest.param(
            SuccessiveHalvingTuner, {"eta": 2, "N": 2, "K": 4, "T": 2}, id="successive_halving"
        ),
        pytest.param(HyperbandTuner, {"max_iter": 4, "eta": 2}, id="hyperband"),
    ],
)
def test_inner_tuner_base_class_rejected(tuner_class: type[Tuner], options: dict[str, Any]) -> None:
    eval_fn = CountingEval()
    tuner = tuner_class(SPACE, eval_fn, budget=10, show_loading=False)

    with pytest.raises(TypeError, match="tuner"):
        tuner.tune(tuner=Tuner, **options)

    assert eval_fn.calls == 0


# Fuzz: valid input


@st.composite
def _float_ranges(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        low = draw(st.floats(min_value=1e-6, max_value=1e3))
        high = low * draw(st.floats(min_value=1.01, max_value=1e6))
        return {"range": (low, high), "log": True}
    low = draw(st.floats(min_value=-1e6, max_value=1e6))
    high = low + draw(st.floats(min_value=1e-3, max_value=1e6))
    return {"range": (low, high)}


@st.composite
def _int_ranges(draw: st.DrawFn) -> dict[str, Any]:
    log = draw(st.booleans())
    low = draw(st.integers(min_value=1 if log else -1000, max_value=1000))
    high = low + draw(st.integers(min_value=1, max_value=1000))
    spec: dict[str, Any] = {"range": (low, high), "type": draw(st.sampled_from([int, "int"]))}
    if log:
        spec["log"] = True
    return spec


CHOICE_VALUES = st.one_of(
    st.integers(-5, 5),
    st.text(max_size=3),
    st.booleans(),
    st.none(),
    st.floats(min_value=-10, max_value=10),
)
VALID_SPACES = st.dictionaries(
    st.text(min_size=1, max_size=4),
    st.one_of(
        _float_ranges(),
        _int_ranges(),
        st.lists(CHOICE_VALUES, min_size=1, max_size=4, unique_by=lambda v: (type(v), v)),
    ),
    min_size=1,
    max_size=3,
)

VALID_RUNS: list[tuple[type[Tuner], dict[str, Any]]] = [
    (RandomTuner, {"seed": 0}),
    (GridTuner, {}),
    (CoordinateDescentTuner, {"alpha": 0.3, "decay_rate": 0.5, "seed": 0}),
    (SuccessiveHalvingTuner, {"eta": 2, "N": 2, "K": 4, "T": 1, "seed": 0}),
    (HyperbandTuner, {"max_iter": 4, "eta": 2, "seed": 0}),
]


def _inside(value: Any, spec: Any) -> bool:
    """Whether ``value`` is a valid value of the raw search space entry ``spec``."""
    if isinstance(spec, list):
        return any(type(value) is type(choice) and value == choice for choice in spec)
    low, high = spec["range"]
    if "type" in spec:
        return type(value) is int and low <= value <= high
    return type(value) is float and low <= value <= high


def _spread_score(config: dict[str, Any], resource: int | None = None) -> float:
    """A score that differs between configs, so that adaptive strategies move around."""
    return float(zlib.crc32(repr(sorted(config.items())).encode()) % 1000)


@FUZZ_SETTINGS
@given(search_space=VALID_SPACES, run=st.sampled_from(VALID_RUNS))
def test_fuzz_valid_space_configs_inside(
    search_space: dict[str, Any], run: tuple[type[Tuner], dict[str, Any]]
) -> None:
    tuner_class, options = run
    tuner = tuner_class(search_space, _spread_score, budget=12, show_loading=False)

    _tune_briefly(tuner, **options)

    assert tuner.trials
    for trial in tuner.trials:
        assert trial.status is TrialStatus.OK
        assert set(trial.config) == set(search_space)
        for name, value in trial.config.items():
            assert _inside(value, search_space[name]), (name, value, search_space[name])
