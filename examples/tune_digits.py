"""Tune a support vector classifier on scikit-learn's handwritten digits, in worker processes.

This is what ``async-tuner demo`` runs, written with the public API only. It needs
scikit-learn (``pip install -e ".[demo]"``) and no download, because the digits ship inside
scikit-learn. From the repository root:

    python examples/tune_digits.py

A quarter of the 1,797 images is held out. Each trial scores one configuration by its 5-fold
cross-validated accuracy on the rest, on one of 2 worker processes, and the best configuration
is then scored once on the held-out images. With 2 cores the 500 trials take about 45 s. The
run log goes to ``runs/DATE/TIME``.
"""

# An example reports its results with print, which the library itself never uses.
# ruff: noqa: T201

from __future__ import annotations

import json
from typing import Any

from async_tuner import RandomTuner

SEARCH_SPACE = {
    "C": {"range": (1e-2, 1e3), "log": True},
    "gamma": {"range": (1e-4, 1e1), "log": True},
    "kernel": ["rbf", "poly", "sigmoid"],
}
BUDGET = 500  # evaluations
CV_FOLDS = 5
TEST_FRACTION = 0.25
SPLIT_SEED = 0  # the same split in the parent and in every worker process
PIXEL_MAX = 16.0  # pixel values run from 0 to 16


def load_split() -> tuple[Any, Any, Any, Any]:
    """Return the scaled digits as (train images, test images, train labels, test labels)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    split: tuple[Any, Any, Any, Any] = train_test_split(
        images / PIXEL_MAX,
        labels,
        test_size=TEST_FRACTION,
        random_state=SPLIT_SEED,
        stratify=labels,
    )
    return split


def cross_validated_accuracy(config: dict[str, Any]) -> float:
    """Return the configuration's mean accuracy over 5 cross-validation folds.

    This runs in a worker process. Loading the digits again in each call takes a few
    milliseconds, against about 0.2 s for the cross-validation.
    """
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    train_images, _, train_labels, _ = load_split()
    scores = cross_val_score(SVC(**config), train_images, train_labels, cv=CV_FOLDS)
    return float(scores.mean())


def held_out_accuracy(config: dict[str, Any]) -> float:
    """Fit the configuration on the tuning images and return its accuracy on the test images."""
    from sklearn.svm import SVC

    train_images, test_images, train_labels, test_labels = load_split()
    classifier = SVC(**config).fit(train_images, train_labels)
    return float(classifier.score(test_images, test_labels))


def main() -> None:
    """Tune, then print the best score, the best configuration and the run log's folder."""
    tuner = RandomTuner(
        SEARCH_SPACE,
        cross_validated_accuracy,
        budget=BUDGET,
        log=True,
        log_dir="runs",
        num_workers=2,
        executor="process",
    )
    result = tuner.tune(seed=0)

    failed = sum(1 for trial in tuner.trials if not trial.ok)
    evaluation_s = sum(result.execution_times)
    print(f"{len(tuner.trials)} trials ({failed} failed), {evaluation_s:.1f} s of evaluation")
    if result.best_config is None:
        print("No trial succeeded.")
    else:
        print(f"Best cross-validated accuracy: {result.best_score:.4f}")
        print(f"Best configuration: {json.dumps(result.best_config)}")
        print(f"Accuracy on the held-out images: {held_out_accuracy(result.best_config):.4f}")
    print(f"Run log: {tuner.log_path}")


if __name__ == "__main__":
    main()
