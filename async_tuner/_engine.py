"""The ``Tuner`` base class: arguments, the run's lifecycle, the run log and the sync facade."""

from __future__ import annotations

import concurrent.futures
import copy
import datetime
import json
import logging
import math
import os
import random
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio

from . import _options as check
from ._journal import RunLog, to_jsonable
from ._run import Run, Scope
from ._runner import Interrupts, loop_running, run_here, run_in_thread
from ._space import SearchSpace
from ._types import ResumeError, Trial, TuneResult

logger = logging.getLogger(__name__)

SEED_BITS = 63  # size of the seed drawn for a run that was given none


def _identity(output: Any) -> Any:
    return output


class Tuner:
    """Base class of the strategies: stores the arguments and runs a strategy on the worker pool.

    The first fourteen parameters are those of ``rekall.tuner.Tuner``, in the same order and
    with the same defaults.

    Args:
        search_space: Parameter name to ``[choices]`` (discrete) or ``{"range": (low, high)}``
            (float range; add ``"log": True`` for a log-uniform range, ``"type": int`` for an
            integer range with inclusive bounds).
        eval_fn: Evaluates one configuration (a dict) and returns its score, or an output that
            ``score_fn`` turns into a score. May be ``async def``: it then runs on the event loop.
        maximize: Maximize the score if True, minimize it otherwise.
        budget: Cap on the cost of the run: one unit per evaluation, or its resource in the
            multi-fidelity strategies' resource mode. Never exceeded.
        log: Write a run log (see ``log_dir``).
        log_dir: Folder of run logs; default the current directory.
        run_dir: Subfolder for a set of runs; default today's date.
        run_name: Subfolder of this run; default the start time.
        start_config: Configuration some strategies start from.
        start_score: Known score of ``start_config``, which is then not evaluated again.
        score_fn: Turns ``eval_fn``'s output into the score.
        score_log_fn: Turns ``eval_fn``'s output into what the log stores.
        num_workers: Evaluations in flight at once.
        show_loading: Show a progress bar.
        executor: ``"thread"`` (default), ``"process"`` (cloudpickle, so lambdas and closures
            work) or any ``concurrent.futures.Executor``, such as a Dask client's
            ``get_executor()``, which is used as given and not shut down.
        trial_timeout: Seconds an evaluation may run before it is recorded as timed out.
            Process workers are killed and replaced, and async evaluations cancelled. A thread
            cannot be killed, so the engine stops waiting for it and warns once per run.
        time_budget: Seconds after which no new trial starts; the run returns the best so far.
        resume: Continue the run logged at ``log_dir/run_dir/run_name``, replaying the trials
            it finished. ``"auto"`` resumes when that log exists and starts afresh otherwise.
    """

    def __init__(
        self,
        search_space: Mapping[str, Any],
        eval_fn: Callable[..., Any],
        maximize: bool = True,
        budget: float = 500,
        log: bool = False,
        log_dir: str | os.PathLike[str] | None = None,
        run_dir: str | os.PathLike[str] | None = None,
        run_name: str | os.PathLike[str] | None = None,
        start_config: Mapping[str, Any] | None = None,
        start_score: float | None = None,
        score_fn: Callable[[Any], Any] = _identity,
        score_log_fn: Callable[[Any], Any] = _identity,
        num_workers: int = 1,
        show_loading: bool = True,
        *,
        executor: Literal["thread", "process"] | concurrent.futures.Executor = "thread",
        trial_timeout: float | None = None,
        time_budget: float | None = None,
        resume: bool | Literal["auto"] = False,
    ) -> None:
        self.space = SearchSpace.from_dict(search_space)
        check.check_callable("eval_fn", eval_fn)
        maximize = check.check_bool("maximize", maximize)
        check.check_positive_number("budget", budget)
        log = check.check_bool("log", log)
        check.check_path("log_dir", log_dir)
        check.check_run_path("run_dir", run_dir)
        check.check_run_path("run_name", run_name)
        check.check_callable("score_fn", score_fn)
        check.check_callable("score_log_fn", score_log_fn)
        check.check_positive_int("num_workers", num_workers)
        show_loading = check.check_bool("show_loading", show_loading)
        check.check_executor(executor)
        check.check_positive_number("trial_timeout", trial_timeout, allow_none=True)
        check.check_positive_number("time_budget", time_budget, allow_none=True)
        self._is_async = check.is_async_callable(eval_fn)
        _check_combinations(self._is_async, executor, log, resume, run_dir, run_name)

        self.search_space = search_space
        self.eval_fn = eval_fn
        self.maximize = maximize
        self.budget = budget
        self.log = log
        self.log_dir = log_dir
        self.run_dir = run_dir
        self.run_name = run_name
        self.start_config = _check_start(self.space, start_config, start_score)
        self.start_score = None if start_score is None else float(start_score)
        self.score_fn = score_fn
        self.score_log_fn = score_log_fn
        self._custom_score_fn = score_fn is not _identity
        self.num_workers = int(num_workers)
        self.show_loading = show_loading
        self.executor = executor
        self.trial_timeout = trial_timeout
        self.time_budget = time_budget
        self.resume = resume
        self.trials: list[Trial] = []
        self.log_path: Path | None = None
        self._run: Run | None = None

    # ----------------------------------------------------------------- strategy hooks

    if TYPE_CHECKING:
        # Each strategy declares its own keyword-only options, which a fixed base signature
        # would reject as incompatible overrides.
        tune_impl: Callable[..., Coroutine[Any, Any, None]]
    else:

        async def tune_impl(self, scope: Scope, **options: Any) -> None:
            """Run the strategy; subclasses declare their options as keyword-only parameters."""
            msg = f"{type(self).__name__} is not a strategy; use RandomTuner, GridTuner, ..."
            raise NotImplementedError(msg)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Validate strategy options before anything runs; subclasses override it."""

    # ----------------------------------------------------------------- public API

    def tune(self, **options: Any) -> TuneResult:
        """Run the strategy to the end and return the result; blocks the calling thread.

        Runs an event loop of its own. Where the calling thread already runs one (a Jupyter
        notebook), the run happens on a new loop in a helper thread. Ctrl-C stops the run:
        workers are stopped, the log keeps every finished trial, and ``KeyboardInterrupt`` is
        raised.

        Raises:
            TypeError: an option is unknown or missing, or has the wrong type.
            ValueError: an option has an invalid value.
            KeyboardInterrupt: Ctrl-C stopped the run.
        """
        bound = self._bind(options)
        if loop_running():
            return run_in_thread(lambda interrupts: self._tune_owned(bound, interrupts, False))
        return run_here(lambda interrupts: self._tune_owned(bound, interrupts, True))

    async def tune_async(self, **options: Any) -> TuneResult:
        """Run the strategy in the current event loop (asyncio or trio) and return the result.

        If the caller is cancelled, running async evaluations are cancelled, process workers
        are killed, threads are no longer waited for, the log is flushed with every trial that
        finished (``self.trials`` keeps them too), and the cancellation propagates.

        Raises:
            TypeError: an option is unknown or missing, or has the wrong type.
            ValueError: an option has an invalid value.
        """
        return await self._tune(self._bind(options), inline=False, interrupts=None)

    def log_msg(self, msg: str) -> None:
        """Write a line to the running run's text log (and to this module's logger)."""
        if self._run is not None:
            self._run.log_msg(msg)
        else:
            logger.info("%s", msg)

    # ----------------------------------------------------------------- the run

    def _bind(self, options: Mapping[str, Any]) -> dict[str, Any]:
        if self._run is not None:
            msg = (
                f"this {type(self).__name__} is already running; create another tuner to run "
                "a second search at the same time"
            )
            raise RuntimeError(msg)
        bound = check.bind_options(type(self).__name__, self.tune_impl, options)
        if "seed" in bound:
            bound["seed"] = check.check_seed(bound["seed"])
        self.check_options(bound)
        return bound

    async def _tune_owned(
        self, options: dict[str, Any], interrupts: Interrupts, allow_inline: bool
    ) -> TuneResult:
        from ._threads import current_waker

        wake = current_waker()
        with anyio.CancelScope() as cancel_scope:
            interrupts.bind(lambda: wake(cancel_scope.cancel))
            inline = (
                allow_inline
                and self.num_workers == 1
                and self.executor == "thread"
                and self.trial_timeout is None
                and not self._is_async
            )
            return await self._tune(options, inline=inline, interrupts=interrupts)
        # Only Ctrl-C cancels this scope, and the caller then raises KeyboardInterrupt.
        raise KeyboardInterrupt

    async def _tune(
        self, options: dict[str, Any], *, inline: bool, interrupts: Interrupts | None
    ) -> TuneResult:
        strategy = type(self).__name__
        run_log, replay = self._open_log(strategy, options)
        seed = options.get("seed")
        rng = random.Random(
            seed if seed is not None else random.SystemRandom().getrandbits(SEED_BITS)
        )
        try:
            run = Run(
                self,
                inline=inline,
                interrupts=interrupts,
                log=run_log,
                replay=replay,
                strategy_name=strategy,
            )
        except BaseException:
            if run_log is not None:
                run_log.unlock()
            raise
        self._run = run
        self.trials = run.trials
        scope = run.root_scope(rng)
        logger.info(
            "Starting %s with budget %s and %d worker(s)", strategy, self.budget, self.num_workers
        )
        try:
            try:
                async with anyio.create_task_group() as group, AsyncExitStack() as stack:
                    if run_log is not None:
                        await group.start(run_log.run_writer)
                        stack.push_async_callback(run_log.aclose)
                    await run.open(stack)
                    await self.tune_impl(scope, **options)
            except BaseExceptionGroup as group_error:
                single = _single_exception(group_error)
                if single is None:
                    raise
                raise single from None
        except anyio.get_cancelled_exc_class():
            logger.info("%s cancelled after %d trial(s)", strategy, len(run.trials))
            raise
        except BaseException:
            logger.error("%s aborted after %d trial(s)", strategy, len(run.trials), exc_info=True)
            raise
        finally:
            run.close()
            self._run = None
            if run_log is not None:
                try:
                    self._write_report(run_log, run)
                finally:
                    run_log.unlock()
        result = run.result()
        logger.info(
            "%s finished: best score %r at cost %s", strategy, result.best_score, result.total_cost
        )
        return result

    def _write_report(self, run_log: RunLog, run: Run) -> None:
        result = run.result()
        report = {
            "best_score": result.best_score,
            "best_config": result.best_config,
            "scores": result.score_history,
            "execution_times": result.execution_times,
            "cost": result.total_cost,
        }
        path = run_log.write_report(report)
        logger.info("Run report written to %s", path)

    # ----------------------------------------------------------------- run log

    def _log_location(self) -> Path:
        now = datetime.datetime.now()
        base = Path(self.log_dir) if self.log_dir is not None else Path.cwd()
        run_dir = Path(self.run_dir) if self.run_dir is not None else Path(now.strftime("%Y-%m-%d"))
        if self.run_name is not None:
            return base / run_dir / self.run_name
        name = now.strftime("%H-%M-%S")
        path = base / run_dir / name
        suffix = 1
        while path.exists():
            path = base / run_dir / f"{name}-{suffix}"
            suffix += 1
        return path

    def _open_log(
        self, strategy: str, options: dict[str, Any]
    ) -> tuple[RunLog | None, list[dict[str, Any]]]:
        if not self.log:
            if "seed" in options and options["seed"] is None:
                options["seed"] = random.SystemRandom().getrandbits(SEED_BITS)
            return None, []
        path = self._log_location()
        run_log = RunLog(path)
        stored = run_log.read_run_info()
        resuming = bool(self.resume) and stored is not None
        if self.resume is True and stored is None:
            msg = (
                f"resume=True but {path} holds no run log to continue; "
                "check log_dir, run_dir and run_name"
            )
            raise ResumeError(msg)
        if stored is not None and not self.resume:
            msg = (
                f"{path} already holds a run log; pass resume=True to continue that run, "
                "or choose another run_name"
            )
            raise ResumeError(msg)
        if "seed" in options and options["seed"] is None:
            stored_seed = (stored or {}).get("options", {}).get("seed") if resuming else None
            options["seed"] = (
                stored_seed
                if stored_seed is not None
                else random.SystemRandom().getrandbits(SEED_BITS)
            )
        info = {
            "strategy": strategy,
            "search_space": self.space.to_json(),
            "maximize": self.maximize,
            "options": _options_for_log(options),
        }
        if resuming and stored is not None:
            _check_same_run(path, stored, info)
        header = (
            f"{'resume' if resuming else 'start'} {strategy} budget={self.budget} "
            f"num_workers={self.num_workers} options={json.dumps(info['options'])}"
        )
        replay = run_log.prepare(info, header, resume=resuming)
        if resuming:
            logger.info("Resuming %s: %d finished trial(s) in %s", strategy, len(replay), path)
        self.log_path = path
        return run_log, replay


def _single_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """Return the one exception inside nested groups, or None if there are several.

    Task groups wrap what a strategy raises; a caller expects the error itself.
    """
    while len(group.exceptions) == 1:
        inner = group.exceptions[0]
        if not isinstance(inner, BaseExceptionGroup):
            return inner
        group = inner
    return None


def _check_combinations(
    is_async: bool,
    executor: Any,
    log: bool,
    resume: Any,
    run_dir: Any,
    run_name: Any,
) -> None:
    if is_async and executor != "thread":
        msg = (
            'an async def eval_fn runs on the event loop, so executor must be left at "thread" '
            f"(got executor={executor!r}); pass a sync function to use {executor!r}"
        )
        raise ValueError(msg)
    # Identity checks: == against a bool can raise for exotic values (a signalling NaN).
    if (
        resume is not True
        and resume is not False
        and not (isinstance(resume, str) and resume == "auto")
    ):
        msg = f'resume must be True, False or "auto" (got {check.describe(resume)})'
        raise ValueError(msg)
    if resume and not log:
        msg = "resume needs log=True: the run log is what a run resumes from"
        raise ValueError(msg)
    if resume and (run_dir is None or run_name is None):
        msg = "resume needs run_dir and run_name, which name the logged run to continue"
        raise ValueError(msg)


def _check_start(
    space: SearchSpace, start_config: Mapping[str, Any] | None, start_score: Any
) -> dict[str, Any] | None:
    if start_score is not None:
        if start_config is None:
            msg = "start_score needs start_config: it is the score of that configuration"
            raise ValueError(msg)
        if not check.is_real(start_score) or math.isnan(start_score):
            msg = f"start_score must be a real number (got {check.describe(start_score)})"
            raise TypeError(msg)
    if start_config is None:
        return None
    if not isinstance(start_config, Mapping):
        msg = f"start_config must be a dict (got {check.describe(start_config)})"
        raise TypeError(msg)
    return copy.deepcopy(space.check_config(start_config, "start_config"))


def _options_for_log(options: Mapping[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for name, value in options.items():
        if isinstance(value, type):
            plain[name] = f"{value.__module__}.{value.__qualname__}"
        else:
            plain[name] = to_jsonable(value)
    return plain


def _check_same_run(path: Path, stored: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    normalized = json.loads(json.dumps(to_jsonable(current)))
    for key in ("strategy", "search_space", "maximize", "options"):
        if stored.get(key) != normalized.get(key):
            msg = (
                f"cannot resume {path}: the logged run has {key} {json.dumps(stored.get(key))}, "
                f"this run has {json.dumps(normalized.get(key))}; resume with the same {key}, "
                "or start a new run with another run_name"
            )
            raise ResumeError(msg)
