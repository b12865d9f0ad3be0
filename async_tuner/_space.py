"""Search space validation, sampling, grids and config keys.

Implementation notes on ``SearchSpace.grid``. The problem is to cover every parameter as evenly
as the budget allows. The naive approach gives every range the same number of points, the
largest n whose power fits the budget. That leaves budget unused. Two ranges with a budget of
20 stop at 4 x 4 = 16 configs, and an integer range with fewer than n values wastes its share.
Instead each range starts at one point (its midpoint) and the ranges gain one point each in
turn, so long as the cross-product still fits the budget. A range that cannot grow once never
grows again, because the product only increases. Float ranges use the interior points
``low + k * (high - low) / (n + 1)`` for ``k = 1..n``, taken in log space for log ranges, so
no point lies on a bound. Integer ranges round those points, and once every interior integer
is in, they add the low bound and then the high bound. The cross-product is then enumerated
lazily and cut at the budget, so a large discrete space costs only what is returned.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import numbers
import random
import re
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias

from ._types import SearchSpaceError

logger = logging.getLogger(__name__)

_RANGE_KEYS: Final = ("range", "log", "type")
_IMMUTABLE_TYPES: Final = frozenset({int, float, str, bool, type(None)})
_NAN_KEY: Final = ("float", "nan")
_ADDRESS_PATTERN: Final = re.compile(r" at 0x[0-9a-fA-F]+")

# Shortens received values in error messages, with room for long parameter names.
_REPR: Final = reprlib.Repr()
_REPR.maxstring = 100
_REPR.maxother = 100


@dataclasses.dataclass(frozen=True)
class ChoiceParam:
    """Discrete parameter: one of ``choices``, which are plain Python values."""

    name: str
    choices: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class RangeParam:
    """Continuous or integer parameter between ``low`` and ``high``, both inclusive.

    ``low`` and ``high`` are ints when ``integer`` is set and floats otherwise. With ``log``
    the parameter is spread evenly in log space, and ``low`` is positive.
    """

    name: str
    low: float
    high: float
    log: bool
    integer: bool


Param: TypeAlias = ChoiceParam | RangeParam


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Validated search space: its parameters in the order the user's dict gave them.

    Build one with ``SearchSpace.from_dict``. The constructor does not validate ``params``.
    ``immutable_values`` is true when every choice is an int, float, str, bool or None, so a
    shallow copy of a config shares no mutable object with the search space.
    """

    params: tuple[Param, ...]
    immutable_values: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        immutable = all(
            type(choice) in _IMMUTABLE_TYPES
            for param in self.params
            if isinstance(param, ChoiceParam)
            for choice in param.choices
        )
        object.__setattr__(self, "immutable_values", immutable)

    @classmethod
    def from_dict(cls, search_space: Mapping[str, Any]) -> SearchSpace:
        """Validate a search space dict and build a ``SearchSpace`` from it.

        A list or tuple value is a discrete parameter over its elements. A dict value
        ``{"range": (low, high)}`` is a float range. It may add ``"log": True`` for a
        log-uniform range with ``low > 0`` and ``"type": int`` (or ``"int"``) for an integer
        range with inclusive integer bounds. NumPy scalars become plain Python values.

        Raises:
            TypeError: ``search_space`` is not a mapping.
            SearchSpaceError: a parameter does not fit the form above. The message names the
                parameter, the rule and the value received.
        """
        if not isinstance(search_space, Mapping):
            msg = (
                "search space must be a mapping from parameter names to choices or ranges "
                f"(got {_describe(search_space)})"
            )
            raise TypeError(msg)

        if not search_space:
            msg = f"search space must contain at least one parameter (got {search_space!r})"
            raise SearchSpaceError(msg)

        return cls(tuple(_parse_param(name, value) for name, value in search_space.items()))

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """Draw one config uniformly at random, using only ``rng``.

        Choices are drawn uniformly and ranges uniformly in their own scale (log-uniform for
        log ranges). A choice value is the choice object itself, not a copy.
        """
        return {param.name: _sample_value(param, rng) for param in self.params}

    def grid(self, budget: int) -> list[dict[str, Any]]:
        """Return at most ``budget`` distinct configs that cover the search space evenly.

        Configs come in cross-product order, with the last parameter varying fastest. Float
        values lie strictly inside their range. When the choices alone have more
        combinations than ``budget``, the first ``budget`` combinations are returned.

        Raises:
            ValueError: ``budget`` is not a positive int.
        """
        if isinstance(budget, bool) or not isinstance(budget, int):
            msg = f"budget must be a positive integer (got {_describe(budget)})"
            raise ValueError(msg)

        if budget < 1:
            msg = f"budget must be a positive integer (got {budget!r})"
            raise ValueError(msg)

        levels = _grid_levels(self.params, budget)
        axes = [_grid_axis(param, level) for param, level in zip(self.params, levels, strict=True)]
        names = [param.name for param in self.params]
        combinations = itertools.islice(itertools.product(*axes), budget)
        configs = [dict(zip(names, values, strict=True)) for values in combinations]
        logger.debug(
            "grid of %d configs for budget %d (values per parameter: %s)",
            len(configs),
            budget,
            [len(axis) for axis in axes],
        )
        return configs

    def center(self) -> dict[str, Any]:
        """Return the "average" config: each range's midpoint and each first choice.

        The midpoint is taken in the range's own scale: geometric for log ranges, and rounded
        half up for integer ranges.
        """
        return {param.name: _center_value(param) for param in self.params}

    def check_config(self, config: Mapping[str, Any], what: str) -> dict[str, Any]:
        """Validate a user's config, such as a start_config, and return a plain-typed copy.

        Every parameter must be present and no other name. A choice value must equal one of
        the choices (floats compared to 12 significant digits), and the copy contains that choice.
        A range value must be a real number inside ``[low, high]``, and an integral one for
        integer ranges. The copy contains Python floats for float ranges and ints for integer
        ranges, in the search space's parameter order.

        Args:
            config: The config to validate.
            what: The config's name for error messages, for example ``"start_config"``.

        Raises:
            TypeError: ``config`` is not a mapping.
            SearchSpaceError: the config does not fit the search space. The message names
                ``what``, the parameter and the value received.
        """
        if not isinstance(config, Mapping):
            msg = (
                f"{what} must be a mapping from parameter names to values (got {_describe(config)})"
            )
            raise TypeError(msg)

        names = [param.name for param in self.params]
        missing = [name for name in names if name not in config]
        if missing:
            msg = f"{what} must set every search space parameter (missing {_quote_all(missing)})"
            raise SearchSpaceError(msg)

        unknown = [name for name in config if name not in names]
        if unknown:
            msg = (
                f"{what} must contain only search space parameters {_quote_all(names)} "
                f"(got unknown {_quote_all(unknown)})"
            )
            raise SearchSpaceError(msg)

        return {param.name: _check_value(param, config[param.name], what) for param in self.params}

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serializable description of the search space.

        Two search spaces built from equal dicts give equal descriptions, also after a JSON
        round trip, so a resumed run can compare its search space with the logged one.
        """
        return {"params": [_param_to_json(param) for param in self.params]}


def config_key(config: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Return a hashable identity for a config, with names sorted.

    Floats are rounded to 12 significant digits, so ``0.1 + 0.2`` and ``0.3`` give the same
    key. Lists, tuples, dicts and sets become tagged tuples of their frozen items, and NaN
    equals NaN. Other unhashable values are keyed by their repr.
    """
    return tuple(sorted((name, _freeze(value)) for name, value in config.items()))


# Parsing


def _parse_param(name: object, value: object) -> Param:
    if not isinstance(name, str):
        msg = f"search space parameter names must be strings (got {_describe(name)})"
        raise SearchSpaceError(msg)

    if isinstance(value, (list, tuple)):
        return _parse_choices(name, value)

    if isinstance(value, Mapping):
        return _parse_range(name, value)

    msg = (
        f"search space parameter {name!r}: value must be a list or tuple of choices, or a dict "
        f"with a 'range' key (got {_describe(value)})"
    )
    raise SearchSpaceError(msg)


def _parse_choices(name: str, choices: Sequence[Any]) -> ChoiceParam:
    if not choices:
        msg = f"search space parameter {name!r}: choices must not be empty (got {choices!r})"
        raise SearchSpaceError(msg)

    return ChoiceParam(name, tuple(_to_plain(choice) for choice in choices))


def _parse_range(name: str, spec: Mapping[Any, Any]) -> RangeParam:
    prefix = f"search space parameter {name!r}:"
    unknown = [key for key in spec if not (isinstance(key, str) and key in _RANGE_KEYS)]
    if unknown:
        msg = (
            f"{prefix} keys must be among {_quote_all(_RANGE_KEYS)} "
            f"(got unknown {_quote_all(unknown)})"
        )
        raise SearchSpaceError(msg)

    if "range" not in spec:
        keys = _REPR.repr(list(spec))
        msg = f"{prefix} a dict parameter must have a 'range' key (got keys {keys})"
        raise SearchSpaceError(msg)

    log = _parse_log(prefix, spec.get("log", False))
    integer = _parse_type(prefix, spec.get("type", float))
    low, high = _parse_bounds(prefix, spec["range"], integer=integer)

    if log and low <= 0:
        msg = f"{prefix} bounds of a log range must be positive (got {_REPR.repr(spec['range'])})"
        raise SearchSpaceError(msg)

    param = RangeParam(name, low, high, log=log, integer=integer)
    if not integer and not low < _center_value(param) < high:
        msg = (
            f"{prefix} range bounds must leave a float strictly between them "
            f"(got {_REPR.repr(spec['range'])})"
        )
        raise SearchSpaceError(msg)

    return param


def _parse_log(prefix: str, log: object) -> bool:
    log = _to_plain(log)
    if not isinstance(log, bool):
        msg = f"{prefix} log must be True or False (got {_describe(log)})"
        raise SearchSpaceError(msg)

    return log


def _parse_type(prefix: str, type_: object) -> bool:
    """Return whether the range is an integer range."""
    # Identity and str checks, because `in` would call `==` on an arbitrary object.
    if type_ is int or (isinstance(type_, str) and type_ == "int"):
        return True

    if type_ is float or (isinstance(type_, str) and type_ == "float"):
        return False

    msg = f"{prefix} type must be int, 'int', float or 'float' (got {_describe(type_)})"
    raise SearchSpaceError(msg)


def _parse_bounds(prefix: str, bounds: object, *, integer: bool) -> tuple[float, float]:
    if not isinstance(bounds, (list, tuple)):
        msg = f"{prefix} range must be a list or tuple (low, high) (got {_describe(bounds)})"
        raise SearchSpaceError(msg)

    if len(bounds) != 2:
        msg = f"{prefix} range must have exactly two bounds (low, high) (got {_REPR.repr(bounds)})"
        raise SearchSpaceError(msg)

    received = _REPR.repr(bounds)
    low, high = (_to_plain(bound) for bound in bounds)
    if isinstance(low, bool) or isinstance(high, bool):
        msg = f"{prefix} range bounds must be numbers, not bools (got {received})"
        raise SearchSpaceError(msg)

    if not (isinstance(low, numbers.Real) and isinstance(high, numbers.Real)):
        kinds = f"{type(low).__name__} and {type(high).__name__}"
        msg = f"{prefix} range bounds must be real numbers (got {received} of types {kinds})"
        raise SearchSpaceError(msg)

    if not (_is_finite(low) and _is_finite(high)):
        msg = f"{prefix} range bounds must be finite and fit in a float (got {received})"
        raise SearchSpaceError(msg)

    if integer and not (_is_integral(low) and _is_integral(high)):
        msg = f"{prefix} bounds of an int range must be integers (got {received})"
        raise SearchSpaceError(msg)

    if not low < high:
        msg = f"{prefix} range bounds must satisfy low < high (got {received})"
        raise SearchSpaceError(msg)

    if integer:
        return _to_int(low), _to_int(high)

    return float(low), float(high)


def _is_finite(number: numbers.Real) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an int or Fraction too large for a float
        return False


def _is_integral(number: numbers.Real) -> bool:
    return isinstance(number, int) or number == math.floor(number)


def _to_plain(value: Any) -> Any:
    """Return a NumPy scalar as the equal Python value, and anything else unchanged."""
    is_numpy = type(value).__module__.partition(".")[0] == "numpy"
    if is_numpy and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()

    return value


# Values


def _sample_value(param: Param, rng: random.Random) -> Any:
    if isinstance(param, ChoiceParam):
        return rng.choice(param.choices)

    if param.integer:
        low, high = int(param.low), int(param.high)
        if not param.log:
            return rng.randint(low, high)

        # Each integer owns the interval [i - 0.5, i + 0.5) in value, so the bounds are not
        # drawn half as often as the interior integers.
        draw = _exp(rng.uniform(math.log(low - 0.5), math.log(high + 0.5)))
        return _round_into(draw, low, high)

    return _clamp(_range_point(param, rng.random()), param.low, param.high)


def _center_value(param: Param) -> Any:
    if isinstance(param, ChoiceParam):
        return param.choices[0]

    midpoint = _range_point(param, 0.5)
    if param.integer:
        return _round_into(midpoint, int(param.low), int(param.high))

    return _clamp(midpoint, param.low, param.high)


def _check_value(param: Param, value: Any, what: str) -> Any:
    prefix = f"{what} parameter {param.name!r}:"
    value = _to_plain(value)
    if isinstance(param, ChoiceParam):
        key = _freeze(value)
        for choice in param.choices:
            if choice is value or _freeze(choice) == key:
                return choice

        msg = f"{prefix} value must be one of {_REPR.repr(param.choices)} (got {_describe(value)})"
        raise SearchSpaceError(msg)

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{prefix} value must be a real number (got {_describe(value)})"
        raise SearchSpaceError(msg)

    if not _is_within(value, param.low, param.high):
        msg = f"{prefix} value must lie within [{param.low!r}, {param.high!r}] (got {value!r})"
        raise SearchSpaceError(msg)

    if not param.integer:
        return float(value)

    if not _is_integral(value):
        msg = f"{prefix} value of an int range must be an integer (got {value!r})"
        raise SearchSpaceError(msg)

    return _to_int(value)


def _to_int(number: Any) -> int:
    # Any, not Real: typeshed's Real.__floor__ does not promise an int.
    floor: int = math.floor(number)
    return floor


def _is_within(number: Any, low: float, high: float) -> bool:
    # Any, not Real, because typeshed's Real does not declare comparisons with float.
    return bool(low <= number <= high)


def _range_point(param: RangeParam, fraction: float) -> float:
    """Return the point a ``fraction`` of the way from low to high, in the range's scale."""
    # The weighted sum cannot overflow, unlike high - low for bounds near the float maximum.
    if param.log:
        log_point = (1 - fraction) * math.log(param.low) + fraction * math.log(param.high)
        return _exp(log_point)

    return (1 - fraction) * param.low + fraction * param.high


def _exp(exponent: float) -> float:
    try:
        return math.exp(exponent)
    except OverflowError:  # the exponent of a bound near the float maximum, after rounding
        return math.inf


def _round_into(number: float, low: int, high: int) -> int:
    """Round half up to an integer within ``[low, high]``."""
    clamped = _clamp(number, low, high)
    if isinstance(clamped, int):
        return clamped

    # Above 2**52 a float is a whole number and adding 0.5 can round it up past high.
    rounded: int = _clamp(math.floor(clamped + 0.5), low, high)
    return rounded


def _clamp(number: Any, low: Any, high: Any) -> Any:
    return min(max(number, low), high)


# Grid


def _grid_levels(params: Sequence[Param], budget: int) -> list[int]:
    """Return each parameter's level: the number of grid points its axis is built from.

    A range's axis may have fewer values than its level after deduplication, so the product of
    the levels is an upper bound on the number of configs.
    """
    levels = [
        _distinct_count(param.choices) if isinstance(param, ChoiceParam) else 1 for param in params
    ]
    product = math.prod(levels)
    growing = [index for index, param in enumerate(params) if isinstance(param, RangeParam)]

    while growing:
        if len(growing) == 1:
            # Only one range left: jump straight to its largest level instead of counting up.
            index = growing[0]
            others = product // levels[index]
            largest = min(budget // others, _max_level(params[index], budget))
            levels[index] = max(levels[index], largest)
            break

        still_growing = []
        for index in growing:
            others = product // levels[index]
            can_grow = levels[index] < _max_level(params[index], budget)
            if can_grow and others * (levels[index] + 1) <= budget:
                levels[index] += 1
                product = others * levels[index]
                still_growing.append(index)

        growing = still_growing

    return levels


def _max_level(param: Param, budget: int) -> int:
    """Return the largest useful level: every integer of an int range, the budget for floats."""
    if isinstance(param, RangeParam) and param.integer:
        return int(param.high) - int(param.low) + 1

    return budget


def _distinct_count(choices: Iterable[Any]) -> int:
    return len({_freeze(choice) for choice in choices})


def _grid_axis(param: Param, level: int) -> list[Any]:
    """Return a parameter's grid values, distinct under ``config_key``."""
    if isinstance(param, ChoiceParam):
        values: Iterable[Any] = param.choices
    elif param.integer:
        values = _int_axis(param, level)
    else:
        values = _float_axis(param, level)

    return _unique(values)


def _float_axis(param: RangeParam, level: int) -> list[float]:
    points = [_range_point(param, k / (level + 1)) for k in range(1, level + 1)]
    interior = [point for point in points if param.low < point < param.high]
    # Very narrow ranges can round every point onto a bound. The midpoint is inside, because
    # from_dict checks it.
    return interior or [_center_value(param)]


def _int_axis(param: RangeParam, level: int) -> list[int]:
    low, high = int(param.low), int(param.high)
    interior_count = high - low - 1
    if level > interior_count:
        lower = [low] if level >= interior_count + 1 else []
        upper = [high] if level >= interior_count + 2 else []
        return [*lower, *range(low + 1, high), *upper]

    if not param.log:
        # low + round(k * (high - low) / (level + 1)) in integer arithmetic, rounding half up.
        # The points are more than 1 apart, so the rounded values are distinct and interior.
        span, denominator = high - low, 2 * (level + 1)
        return [low + (2 * k * span + level + 1) // denominator for k in range(1, level + 1)]

    # NOTE: log-spaced points crowd together near low, so after rounding and deduplication a
    # log int range can have fewer than `level` values and the grid can fall short of budget.
    points = (_range_point(param, k / (level + 1)) for k in range(1, level + 1))
    return [_round_into(point, low + 1, high - 1) for point in points]


def _unique(values: Iterable[Any]) -> list[Any]:
    seen: set[Any] = set()
    unique = []
    for value in values:
        key = _freeze(value)
        if key not in seen:
            seen.add(key)
            unique.append(value)

    return unique


# Keys and descriptions


def _freeze(value: Any) -> Any:
    """Return a hashable stand-in for a value, equal for values that config_key treats as equal."""
    value = _to_plain(value)
    if isinstance(value, float):
        if math.isnan(value):
            return _NAN_KEY
        if math.isinf(value):
            return value
        return float(f"{value:.12g}")

    if isinstance(value, (str, int, type(None))):
        return value

    # Tags keep a list, a tuple and a dict with the same items apart, and keep them apart from
    # plain tuples, which only ever appear in a key through a tag.
    if isinstance(value, list):
        return ("list", tuple(_freeze(item) for item in value))

    if isinstance(value, tuple):
        return ("tuple", tuple(_freeze(item) for item in value))

    if isinstance(value, Mapping):
        items = [(_freeze(key), _freeze(item)) for key, item in value.items()]
        return ("dict", tuple(sorted(items, key=repr)))

    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(_freeze(item) for item in value))

    if type(value).__module__.partition(".")[0] == "numpy" and hasattr(value, "tolist"):
        # A NumPy array's repr elides the middle of large arrays, so key its items instead.
        return ("array", _freeze(value.tolist()))

    try:
        hash(value)
    except TypeError:
        return ("repr", type(value).__qualname__, repr(value))

    return value


def _param_to_json(param: Param) -> dict[str, Any]:
    if isinstance(param, ChoiceParam):
        return {
            "name": param.name,
            "kind": "choice",
            "choices": [_choice_to_json(choice) for choice in param.choices],
        }

    return {
        "name": param.name,
        "kind": "range",
        "low": param.low,
        "high": param.high,
        "log": param.log,
        "integer": param.integer,
    }


def _choice_to_json(choice: Any) -> Any:
    """Return a JSON value for a choice that is equal across runs for equal choices."""
    if type(choice) in (str, int, bool, type(None)):
        return choice

    if type(choice) is float and math.isfinite(choice):
        return choice

    module = getattr(choice, "__module__", None)
    qualname = getattr(choice, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):  # functions and classes
        return {"object": f"{module}.{qualname}"}

    # NOTE: two objects with the same repr, such as instances without a custom __repr__, get
    # equal descriptions whatever their state.
    return {"repr": _ADDRESS_PATTERN.sub("", repr(choice))}


def _describe(value: object) -> str:
    """Return a short repr of a received value with its type, for error messages."""
    return f"{_REPR.repr(value)} of type {type(value).__name__}"


def _quote_all(names: Iterable[Any]) -> str:
    return ", ".join(_REPR.repr(name) for name in names)
