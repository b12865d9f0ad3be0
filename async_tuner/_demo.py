"""The digits demo: tune a support vector classifier on scikit-learn's handwritten digits.

The data set is ``sklearn.datasets.load_digits``, which ships inside scikit-learn (1,797 8x8
images, 10 classes), so the demo needs no download. A stratified quarter of it is held out as
a test set. A trial scores one configuration by its 5-fold cross-validated accuracy on the
rest, and the best configuration is then refitted on that rest and scored once on the test set.

Successive halving and hyperband run in resource mode. The resource is the share of each
cross-validation training fold that the classifier is trained on, in units of
1/``MAX_RESOURCE``. At ``MAX_RESOURCE`` it trains on the whole fold, so the score is the same
as the other strategies' score.

scikit-learn is imported inside the functions, so this module imports without it. The
evaluation functions live at module level so that process workers import them by reference
instead of receiving a copy of their code.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from ._engine import Tuner
from .strategies._coordinate_descent import CoordinateDescentTuner
from .strategies._grid import GridTuner
from .strategies._hyperband import HyperbandTuner
from .strategies._random import RandomTuner
from .strategies._successive_halving import SuccessiveHalvingTuner

logger = logging.getLogger(__name__)

SEARCH_SPACE: Mapping[str, Any] = {
    "C": {"range": (1e-2, 1e3), "log": True},
    "gamma": {"range": (1e-4, 1e1), "log": True},
    "kernel": ["rbf", "poly", "sigmoid"],
}

CV_FOLDS = 5
TEST_FRACTION = 0.25  # share of the digits held out for the final test score
SPLIT_SEED = 0  # seed of the train/test split, fixed so that every run scores the same data
PIXEL_MAX = 16.0  # the digits' pixel values are integers from 0 to 16

# Resource units that train on the whole of each fold. With eta = 3, the lowest rung (1 unit)
# trains on 40 images per fold, which contain 8 to 10 of the 10 classes.
MAX_RESOURCE = 27
ETA = 3

# Evaluations in a default run of random, grid or coordinate descent. One evaluation took
# 0.18 s on average, and 500 took about 45 s on 2 process workers on 2 cores (measured as
# benchmarks/README.md describes).
DEFAULT_EVALUATIONS = 500

# Successive halving: K configurations start at T units, over N rungs (1, 3, 9, 27 units).
HALVING_OPTIONS: Mapping[str, int] = {"eta": ETA, "N": 4, "K": 81, "T": 1}

# Coordinate descent: the first step is a tenth of each range's width (in log space for
# the log ranges here), halved after each round in which no coordinate moved.
DESCENT_OPTIONS: Mapping[str, float] = {"alpha": 0.1, "decay_rate": 0.5}


@dataclasses.dataclass(frozen=True)
class DigitsSplit:
    """The scaled digits, split into the tuning part and the held-out test part."""

    train_images: Any
    train_labels: Any
    test_images: Any
    test_labels: Any


@functools.lru_cache(maxsize=1)
def load_split() -> DigitsSplit:
    """Load the digits, scale the pixels to [0, 1] and split off the test set, once per process."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    train_images, test_images, train_labels, test_labels = train_test_split(
        images / PIXEL_MAX,
        labels,
        test_size=TEST_FRACTION,
        random_state=SPLIT_SEED,
        stratify=labels,
    )
    return DigitsSplit(train_images, train_labels, test_images, test_labels)


def make_classifier(config: Mapping[str, Any]) -> Any:
    """Return an unfitted ``sklearn.svm.SVC`` with the configuration's C, gamma and kernel."""
    from sklearn.svm import SVC

    return SVC(C=config["C"], gamma=config["gamma"], kernel=config["kernel"])


def subsample_accuracy(config: Mapping[str, Any], resource: int) -> float:
    """Return the mean validation accuracy over the folds when training on part of each fold.

    The classifier trains on the first ``resource / MAX_RESOURCE`` of each training fold. The
    tuning part was shuffled by the split, so that share is a random sample. Validation always
    uses the whole validation fold.
    """
    from sklearn.model_selection import StratifiedKFold

    split = load_split()
    folds = StratifiedKFold(n_splits=CV_FOLDS).split(split.train_images, split.train_labels)
    accuracies = []
    for train_index, validation_index in folds:
        used = train_index[: math.ceil(len(train_index) * resource / MAX_RESOURCE)]
        classifier = make_classifier(config)
        classifier.fit(split.train_images[used], split.train_labels[used])
        accuracies.append(
            classifier.score(
                split.train_images[validation_index], split.train_labels[validation_index]
            )
        )
    return float(sum(accuracies) / len(accuracies))


def cross_validated_accuracy(config: Mapping[str, Any]) -> float:
    """Return the mean validation accuracy of the configuration over the 5 folds."""
    return subsample_accuracy(config, MAX_RESOURCE)


def held_out_accuracy(config: Mapping[str, Any]) -> float:
    """Fit the configuration on the whole tuning part and return its accuracy on the test set."""
    split = load_split()
    classifier = make_classifier(config)
    classifier.fit(split.train_images, split.train_labels)
    return float(classifier.score(split.test_images, split.test_labels))


@dataclasses.dataclass(frozen=True)
class DemoStrategy:
    """A strategy's settings in the demo.

    Attributes:
        tuner_class: The tuner to construct.
        eval_fn: The function that scores a configuration, with a resource in resource mode.
        options: The ``tune()`` options, without the seed.
        seeded: Whether ``tune()`` takes a ``seed`` option.
        default_budget: The budget of a run without ``--budget``.
    """

    tuner_class: type[Tuner]
    eval_fn: Callable[..., float]
    options: Mapping[str, Any]
    seeded: bool
    default_budget: int


STRATEGIES: dict[str, DemoStrategy] = {
    "random": DemoStrategy(RandomTuner, cross_validated_accuracy, {}, True, DEFAULT_EVALUATIONS),
    "grid": DemoStrategy(GridTuner, cross_validated_accuracy, {}, False, DEFAULT_EVALUATIONS),
    "coordinate-descent": DemoStrategy(
        CoordinateDescentTuner,
        cross_validated_accuracy,
        DESCENT_OPTIONS,
        True,
        DEFAULT_EVALUATIONS,
    ),
    "successive-halving": DemoStrategy(
        SuccessiveHalvingTuner,
        subsample_accuracy,
        HALVING_OPTIONS,
        True,
        SuccessiveHalvingTuner.estimate_cost(**HALVING_OPTIONS),
    ),
    "hyperband": DemoStrategy(
        HyperbandTuner,
        subsample_accuracy,
        {"max_iter": MAX_RESOURCE, "eta": ETA},
        True,
        HyperbandTuner.estimate_cost(
            HyperbandTuner.finite_horizon_hyperband_schedule(MAX_RESOURCE, ETA)
        ),
    ),
}


def make_tuner(
    strategy: str,
    *,
    budget: float | None,
    num_workers: int,
    log_dir: str | os.PathLike[str],
    show_progress: bool,
) -> Tuner:
    """Return a tuner of ``strategy`` for the classifier, logging its run under ``log_dir``.

    The tuner evaluates on ``num_workers`` worker processes. A ``budget`` of None selects the
    strategy's default budget.

    Raises:
        KeyError: ``strategy`` is not a key of ``STRATEGIES``.
        TypeError, ValueError: an argument is invalid, as ``Tuner`` checks it.
    """
    choice = STRATEGIES[strategy]
    return choice.tuner_class(
        SEARCH_SPACE,
        choice.eval_fn,
        maximize=True,
        budget=choice.default_budget if budget is None else budget,
        log=True,
        log_dir=log_dir,
        num_workers=num_workers,
        show_loading=show_progress,
        executor="process",
    )


def tune_options(strategy: str, seed: int | None) -> dict[str, Any]:
    """Return the ``tune()`` options of ``strategy``, with ``seed`` for a seeded strategy.

    A seed of None lets the tuner draw one, which the run log records.

    Raises:
        KeyError: ``strategy`` is not a key of ``STRATEGIES``.
        ValueError: ``seed`` is set for a strategy that takes none.
    """
    choice = STRATEGIES[strategy]
    options = dict(choice.options)
    if choice.seeded:
        options["seed"] = seed
    elif seed is not None:
        msg = f"seed must be None for {strategy}, which draws no random numbers (got {seed!r})"
        raise ValueError(msg)
    return options
