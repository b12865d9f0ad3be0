"""The ``async-tuner`` command line: ``async-tuner demo`` tunes a classifier on real data."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from . import __version__, _demo
from ._types import TrialStatus

DEFAULT_STRATEGY = "random"
DEFAULT_WORKERS = 2
DEFAULT_LOG_DIR = "runs"
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, the shell convention for a run stopped by Ctrl-C
MISSING_DEPENDENCY_EXIT_CODE = 1
RUN_FAILED_EXIT_CODE = 1

MISSING_SKLEARN_MESSAGE = (
    "async-tuner demo needs scikit-learn, which is not installed. "
    'Install it with: pip install "async_tuner[demo]"'
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Exit codes: 0 on success, 1 when scikit-learn is missing or the run log cannot be written,
    2 for invalid arguments, and 130 when Ctrl-C stopped the run.
    """
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return _run_demo(args)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        msg = f"must be a positive integer (got {text!r})"
        raise argparse.ArgumentTypeError(msg) from None
    if value < 1:
        msg = f"must be a positive integer (got {value})"
        raise argparse.ArgumentTypeError(msg)
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="async-tuner",
        description="Concurrent black-box parameter tuning. Run 'async-tuner demo' to try it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    evaluations = _demo.DEFAULT_EVALUATIONS
    halving_budget = _demo.STRATEGIES["successive-halving"].default_budget
    hyperband_budget = _demo.STRATEGIES["hyperband"].default_budget
    demo = commands.add_parser(
        "demo",
        help="tune a support vector classifier on scikit-learn's handwritten digits",
        description=(
            "Tune the C, gamma and kernel of a support vector classifier on scikit-learn's "
            "bundled handwritten digits (no download), scoring each configuration by its "
            "5-fold cross-validated accuracy on 75% of the images. The best configuration is "
            "then scored once on the other 25%. Evaluations run in worker processes, and the "
            "run log is written under --log-dir. With 2 workers on 2 cores, the default budget "
            "of random and grid takes about 45 s."
        ),
    )
    demo.add_argument(
        "--strategy",
        choices=list(_demo.STRATEGIES),
        default=DEFAULT_STRATEGY,
        help=(
            "search strategy (default: %(default)s). successive-halving and hyperband use as "
            "their resource the share of each training fold that the classifier trains on, in "
            f"units of 1/{_demo.MAX_RESOURCE}"
        ),
    )
    demo.add_argument(
        "--budget",
        type=_positive_int,
        metavar="COST",
        help=(
            "cap on the run's cost. For random, grid and coordinate-descent it is a number of "
            f"evaluations (default: {evaluations}). For successive-halving and hyperband it is "
            f"in resource units, where {_demo.MAX_RESOURCE} units are one evaluation on whole "
            f"folds (default: the cost of the full schedule, {halving_budget} and "
            f"{hyperband_budget} units)"
        ),
    )
    demo.add_argument(
        "--workers",
        type=_positive_int,
        default=DEFAULT_WORKERS,
        metavar="N",
        help="number of worker processes evaluating at once (default: %(default)s)",
    )
    demo.add_argument(
        "--log-dir",
        default=DEFAULT_LOG_DIR,
        metavar="DIR",
        help=(
            "folder for run logs; each run writes to DIR/DATE/TIME (default: %(default)s, "
            "relative to the current directory)"
        ),
    )
    demo.add_argument(
        "--seed",
        type=int,
        metavar="INT",
        help=(
            "seed of the strategy's random draws, for a repeatable run (default: a random seed, "
            "recorded in the run log's run.json). grid takes no seed"
        ),
    )
    demo.add_argument(
        "--no-progress",
        action="store_true",
        help="do not show the progress bar",
    )
    demo.set_defaults(command_parser=demo)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    if args.seed is not None and not _demo.STRATEGIES[args.strategy].seeded:
        args.command_parser.error(
            f"--seed does not apply to --strategy {args.strategy}, which is not random"
        )

    try:
        importlib.import_module("sklearn")
    except ImportError:
        _output(MISSING_SKLEARN_MESSAGE, sys.stderr)
        return MISSING_DEPENDENCY_EXIT_CODE

    tuner = _demo.make_tuner(
        args.strategy,
        budget=args.budget,
        num_workers=args.workers,
        log_dir=args.log_dir,
        show_progress=not args.no_progress,
    )
    start = time.perf_counter()
    try:
        result = tuner.tune(**_demo.tune_options(args.strategy, args.seed))
    except KeyboardInterrupt:
        finished = sum(1 for trial in tuner.trials if trial.status is not TrialStatus.RUNNING)
        message = f"Interrupted after {finished} finished trials."
        if tuner.log_path is not None:
            message += f" The run log in {tuner.log_path} keeps each of them."
        _output(message, sys.stderr)
        return INTERRUPTED_EXIT_CODE
    except OSError as exc:
        # For example a --log-dir that cannot be created or written.
        _output(f"async-tuner demo failed: {exc}", sys.stderr)
        return RUN_FAILED_EXIT_CODE
    wall_time = time.perf_counter() - start

    failed = sum(1 for trial in tuner.trials if not trial.ok)
    lines = [
        f"Strategy {args.strategy}: {len(tuner.trials)} trials ({failed} failed) at cost "
        f"{result.total_cost:g} in {wall_time:.1f} s with {args.workers} worker(s)",
    ]
    if result.best_config is None:
        lines.append("No trial succeeded, so there is no best configuration.")
    else:
        split = _demo.load_split()
        lines += [
            f"Best cross-validated accuracy: {result.best_score:.4f}",
            f"Best configuration: {json.dumps(result.best_config)}",
            f"Accuracy of the best configuration on the {len(split.test_labels)} held-out "
            f"images: {_demo.held_out_accuracy(result.best_config):.4f}",
        ]
    lines.append(f"Run log: {tuner.log_path}")
    _output("\n".join(lines), sys.stdout)
    return 0


def _output(text: str, stream: TextIO) -> None:
    # The command's results are its output, not log records, so they bypass logging.
    print(text, file=stream)
