"""Coordinate descent: improve one parameter at a time while holding the others fixed.

Implementation notes. Each round visits every parameter once. A discrete parameter tries all
its other choices in one batch. A range parameter runs a line search: probe one step either
side of the current value in one batch, take the direction that strictly improves the score,
and keep stepping that way while each step improves on the one before. The original line search
added the step to a running value, so rounding drifted, and it evaluated a probe beyond a bound
whenever the other probe was inside. Here every point is computed afresh as ``x0 + k * step``
for an integer k, and a point outside the bounds is skipped and ends the walk. Scores are
cached by ``config_key``, so a config reached twice (a probe back to an earlier point, or a
later round along the same line) costs nothing the second time. When a whole round moves
nothing, alpha decays. The search ends in three cases. Alpha becomes negligible. The engine
rejects an evaluation because the budget or the time budget is spent. Or a round evaluates no
new config and a smaller alpha cannot produce one either, as with discrete parameters and
integer ranges already at one-integer steps.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from .._engine import Tuner
from .._run import Scope
from .._space import ChoiceParam, RangeParam, config_key

logger = logging.getLogger(__name__)

# The search stops once alpha falls below this, because a float range's line-search step would
# then be under this fraction of the range's width.
NEGLIGIBLE_STEP_FRACTION = 1e-9

INIT_METHODS = ("average", "random")

Score = float | None  # None is the score of a failed or timed-out trial, which ranks worst


class CoordinateDescentTuner(Tuner):
    """Search one coordinate at a time: all other choices, or a line search along a range.

    The line search is the original ``rekall.tuner`` one: with step ``alpha * (high - low)``
    (the original's epsilon times Y), probe ``x + step`` and ``x - step`` and walk in the
    improving direction. A round that changes nothing multiplies alpha by ``decay_rate``.

    Departures from the original, each to avoid wasted or invalid evaluations:

    - Both probes run together, and a move needs a strict improvement (the original moved on
      ties).
    - Points outside ``[low, high]`` are skipped, never clamped onto the bound or evaluated.
    - Log ranges step in log space, and integer ranges by at least one integer.
    - No config is evaluated twice in one run.
    - The search stops once no new config can be reached, instead of decaying alpha towards
      zero.

    Example::

        tuner = CoordinateDescentTuner(
            {"x": {"range": (0.0, 1.0)}, "kernel": ["rbf", "linear"]}, eval_fn, budget=100
        )
        result = tuner.tune(alpha=0.1, decay_rate=0.5)
    """

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Validate the options, which ``tune_impl`` documents, before the run starts."""
        _validate_options(
            alpha=options["alpha"],
            decay_rate=options["decay_rate"],
            init_method=options["init_method"],
            line_search_budget=options["line_search_budget"],
            randomize_param_order=options["randomize_param_order"],
        )

    async def tune_impl(
        self,
        scope: Scope,
        *,
        alpha: float,
        decay_rate: float,
        init_method: str = "average",
        line_search_budget: int = 10,
        randomize_param_order: bool = False,
        seed: int | None = None,
    ) -> None:
        """Run coordinate descent until it converges or the budget is spent.

        Args:
            scope: The engine's view of the run.
            alpha: The first line-search step, as a fraction of each range's width, in (0, 1].
            decay_rate: The factor, in (0, 1), that shrinks alpha after a round without a move.
            init_method: Where to start without a ``start_config``: ``"average"`` (range
                midpoints and first choices) or ``"random"`` (a sample drawn with the run's
                random generator).
            line_search_budget: The maximum number of configs one line search examines,
                including the two probes. At least 2.
            randomize_param_order: Whether to shuffle the order of the parameters every round,
                with the run's random generator.
            seed: The seed of the run's random generator, which the engine applies.

        Raises:
            TypeError: An option has the wrong type.
            ValueError: An option is out of range.
        """
        _validate_options(
            alpha=alpha,
            decay_rate=decay_rate,
            init_method=init_method,
            line_search_budget=line_search_budget,
            randomize_param_order=randomize_param_order,
        )

        if self.start_config is not None:
            start = dict(self.start_config)
        elif init_method == "average":
            start = scope.space.center()
        else:
            start = scope.space.sample(scope.rng)
        start_score = self.start_score if self.start_config is not None else None

        descent = _Descent(scope, line_search_budget)
        if not await descent.start_at(start, start_score):
            return

        await descent.run(float(alpha), float(decay_rate), shuffle=randomize_param_order)


def _validate_options(
    *,
    alpha: object,
    decay_rate: object,
    init_method: object,
    line_search_budget: object,
    randomize_param_order: object,
) -> None:
    if not 0 < _real("alpha", alpha) <= 1:
        msg = f"alpha must be in (0, 1] (got {alpha!r})"
        raise ValueError(msg)

    if not 0 < _real("decay_rate", decay_rate) < 1:
        msg = f"decay_rate must be in (0, 1) (got {decay_rate!r})"
        raise ValueError(msg)

    if init_method not in INIT_METHODS:
        msg = f"init_method must be 'average' or 'random' (got {init_method!r})"
        raise ValueError(msg)

    if isinstance(line_search_budget, bool) or not isinstance(line_search_budget, int):
        msg = (
            "line_search_budget must be an integer >= 2 "
            f"(got {line_search_budget!r} of type {type(line_search_budget).__name__})"
        )
        raise TypeError(msg)

    if line_search_budget < 2:
        msg = f"line_search_budget must be an integer >= 2 (got {line_search_budget!r})"
        raise ValueError(msg)

    if not isinstance(randomize_param_order, bool):
        msg = f"randomize_param_order must be True or False (got {randomize_param_order!r})"
        raise TypeError(msg)


def _real(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise TypeError when it is not a real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a real number (got {value!r} of type {type(value).__name__})"
        raise TypeError(msg)

    return float(value)


# Line-search geometry


def line_step(param: RangeParam, alpha: float) -> float:
    """Return the step of a line search along ``param``, in the range's own scale.

    The step is ``alpha * (high - low)``, measured in log space for log ranges. For linear
    integer ranges it is rounded to a whole number of at least 1.
    """
    if param.log:
        return alpha * (math.log(param.high) - math.log(param.low))

    step = alpha * (param.high - param.low)
    if param.integer:
        return max(1, round(step))

    return step


def line_point(param: RangeParam, origin: Any, step: float, k: int) -> Any:
    """Return the point ``k`` steps from ``origin`` along ``param``, or None outside the range.

    The point is computed from ``k`` directly, never by adding steps one after another, so
    rounding does not accumulate. Integer log ranges round the point and move at least ``|k|``
    integers, so consecutive points differ even when the log step is under one integer.
    """
    if not param.log:
        value = origin + k * step
    else:
        exponent = math.log(origin) + k * step
        if not math.log(param.low) <= exponent <= math.log(param.high):
            return None
        value = min(max(math.exp(exponent), param.low), param.high)
        if param.integer:
            rounded = round(value)
            value = max(rounded, origin + k) if k > 0 else min(rounded, origin + k)

    if not param.low <= value <= param.high:
        return None

    return int(value) if param.integer else float(value)


def step_can_shrink(param: RangeParam, origin: Any, step: float) -> bool:
    """Return whether a smaller alpha could give ``param`` probes closer to ``origin``.

    A float range always can. An integer range can while its probes are more than one integer
    away from ``origin``.
    """
    if not param.integer:
        return True

    if not param.log:
        return step > 1

    for direction in (1, -1):
        reach = round(math.exp(math.log(origin) + direction * step))
        if abs(reach - origin) > 1:
            return True

    return False


# Search state


class _Descent:
    """The current config and score of one coordinate descent, with its score cache."""

    def __init__(self, scope: Scope, line_search_budget: int) -> None:
        self.scope = scope
        self.line_search_budget = line_search_budget
        self.config: dict[str, Any] = {}
        self.score: Score = None
        self.cache: dict[Hashable, Score] = {}
        self.evaluated = 0
        self.stopped = False

    async def start_at(self, config: dict[str, Any], score: float | None) -> bool:
        """Set the starting point, evaluating it unless ``score`` is given.

        Returns:
            False when the engine rejected the evaluation, so the search must stop.
        """
        if score is not None:
            self.cache[config_key(config)] = score
            self.config, self.score = config, score
            _report(
                self.scope, "coordinate descent starts at %r with known score %s", config, score
            )
            return True

        scores = await self.scores_of([config])
        if scores is None:
            return False

        self.config, self.score = config, scores[0]
        _report(self.scope, "coordinate descent starts at %r with score %s", config, scores[0])
        return True

    async def scores_of(self, configs: Sequence[dict[str, Any]]) -> list[Score] | None:
        """Return the configs' scores, evaluating in one batch those not in the cache.

        Returns:
            None when the engine rejected an evaluation because the budget or the time budget
            is spent. The search is then stopped.
        """
        keys = [config_key(config) for config in configs]
        pending: dict[Hashable, dict[str, Any]] = {}
        for key, config in zip(keys, configs, strict=True):
            if key not in self.cache and key not in pending:
                pending[key] = config

        if pending:
            trials = await self.scope.evaluate_many(list(pending.values()))
            for trial in trials:
                self.cache[config_key(trial.config)] = trial.score if trial.ok else None
            self.evaluated += len(trials)
            if len(trials) < len(pending) or any(key not in self.cache for key in pending):
                self.stopped = True
                return None

        return [self.cache[key] for key in keys]

    def moved_config(self, name: str, value: Any) -> dict[str, Any]:
        """Return a copy of the current config with ``name`` set to ``value``."""
        config = dict(self.config)
        config[name] = value
        return config

    def move(self, name: str, value: Any, score: Score) -> None:
        """Make the current config take ``value`` for ``name``, with its known score."""
        _report(
            self.scope,
            "coordinate %s moves from %r to %r, score %s -> %s",
            name,
            self.config[name],
            value,
            self.score,
            score,
        )
        self.config = self.moved_config(name, value)
        self.score = score

    async def run(self, alpha: float, decay_rate: float, *, shuffle: bool) -> None:
        """Run rounds over all parameters until the search converges or is stopped."""
        order = list(self.scope.space.params)
        while True:
            if shuffle:
                self.scope.rng.shuffle(order)

            evaluated_before = self.evaluated
            changed = False
            for param in order:
                if isinstance(param, ChoiceParam):
                    moved = await self.search_choices(param)
                else:
                    moved = await self.line_search(param, alpha)
                if self.stopped:
                    return
                changed = changed or moved

            if changed:
                continue

            if self.evaluated == evaluated_before and not self.alpha_can_shrink(alpha):
                _report(self.scope, "coordinate descent converged: no new config reachable")
                return

            alpha *= decay_rate
            if alpha < NEGLIGIBLE_STEP_FRACTION:
                _report(self.scope, "coordinate descent converged: alpha %g is negligible", alpha)
                return
            _report(self.scope, "no coordinate moved in a round, so alpha decays to %g", alpha)

    def alpha_can_shrink(self, alpha: float) -> bool:
        """Return whether a smaller alpha could reach configs the current one cannot."""
        return any(
            step_can_shrink(param, self.config[param.name], line_step(param, alpha))
            for param in self.scope.space.params
            if isinstance(param, RangeParam)
        )

    async def search_choices(self, param: ChoiceParam) -> bool:
        """Try every other choice of ``param`` and move to the best strict improvement.

        Returns:
            Whether the current config changed.
        """
        current_key = config_key({param.name: self.config[param.name]})
        others = [
            choice for choice in param.choices if config_key({param.name: choice}) != current_key
        ]
        scores = await self.scores_of([self.moved_config(param.name, choice) for choice in others])
        if scores is None:
            return False

        best_choice, best_score, found = None, self.score, False
        for choice, score in zip(others, scores, strict=True):
            if self.scope.is_better(score, best_score):
                best_choice, best_score, found = choice, score, True

        if found:
            self.move(param.name, best_choice, best_score)
        return found

    async def line_search(self, param: RangeParam, alpha: float) -> bool:
        """Walk along ``param`` from the current value while the score strictly improves.

        At most ``line_search_budget`` configs are examined, the two probes included.

        Returns:
            Whether the current config changed.
        """
        origin = self.config[param.name]
        step = line_step(param, alpha)
        probes = [
            (k, value) for k in (1, -1) if (value := line_point(param, origin, step, k)) is not None
        ]
        if not probes:
            return False

        scores = await self.scores_of([self.moved_config(param.name, v) for _, v in probes])
        if scores is None:
            return False

        best_k, best_score = 0, self.score
        for (k, _), score in zip(probes, scores, strict=True):
            if self.scope.is_better(score, best_score):
                best_k, best_score = k, score
        if best_k == 0:
            return False

        direction, examined = best_k, len(probes)
        while examined < self.line_search_budget:
            value = line_point(param, origin, step, best_k + direction)
            if value is None:
                break
            scores = await self.scores_of([self.moved_config(param.name, value)])
            examined += 1
            if scores is None:
                return False
            if not self.scope.is_better(scores[0], best_score):
                break
            best_k, best_score = best_k + direction, scores[0]

        self.move(param.name, line_point(param, origin, step, best_k), best_score)
        return True


def _report(scope: Scope, msg: str, *args: object) -> None:
    """Log ``msg`` at INFO level and write it to the run's log."""
    logger.info(msg, *args)
    scope.log_msg(msg % args)
