"""One run of a strategy: the budget, the worker pool, the trial records and the best so far.

Implementation notes. Strategies are coroutines that call ``Scope.evaluate`` from any number of
tasks. A trial is created, its cost reserved and its place in the order assigned synchronously
in ``prepare``, before any await. So the order of trials is the order in which the strategy
asked for them, whatever the backend's scheduler and the completion order. The budget cannot be
overshot by trials racing each other either, because a trial that does not fit is rejected
before it starts. The evaluation then waits for one of the run's slots (``WorkerSlots``, shared
by nested scopes), and the per-trial timeout starts only once it has a slot.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import math
import random
import reprlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._journal import RunLog, record_to_trial, to_jsonable
from ._options import is_real
from ._process import ProcessWorkers
from ._progress import Progress
from ._runner import Interrupts
from ._space import SearchSpace, config_key
from ._threads import EvaluationError, ExecutorWorkers, ThreadWorkers, describe_exception
from ._types import Trial, TrialStatus, TuneResult

if TYPE_CHECKING:
    from ._engine import Tuner

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 0.02  # seconds of inline evaluations between yields to the event loop

ReplayKey = tuple[Any, ...]


class Scope:
    """A strategy's handle on a run: evaluates configurations within a budget.

    A scope made by ``child`` has a cap of its own, counted against every enclosing scope
    too, and puts its ``bracket`` label on its trials.
    """

    def __init__(
        self,
        run: Run,
        *,
        limit: float,
        rng: random.Random,
        bracket: int | None = None,
        rung: int | None = None,
        parent: Scope | None = None,
    ) -> None:
        self._run = run
        self._limit = limit
        self._parent = parent
        self._refused = False
        self.spent: float = 0
        self.rng = rng
        self.bracket = bracket
        self.rung = rung
        self.best: Trial | None = None
        self._path: tuple[int, ...] = () if parent is None else parent.next_position()
        self._count = 0

    @property
    def space(self) -> SearchSpace:
        """The search space of the run."""
        return self._run.space

    @property
    def maximize(self) -> bool:
        """Whether higher scores are better."""
        return self._run.maximize

    @property
    def exhausted(self) -> bool:
        """Whether this scope, an enclosing one or the run has refused a trial."""
        scope: Scope | None = self
        while scope is not None:
            if scope._refused:
                return True
            scope = scope._parent
        return self._run.stopped

    @property
    def remaining(self) -> float:
        """Budget left here: the least of what each enclosing scope has left."""
        left = math.inf
        scope: Scope | None = self
        while scope is not None:
            left = min(left, scope._limit - scope.spent)
            scope = scope._parent
        return left

    def child(
        self,
        *,
        budget: float | None = None,
        bracket: int | None = None,
        rung: int | None = None,
        rng: random.Random | None = None,
    ) -> Scope:
        """Return a nested scope with its own cap, labels and random generator.

        The ``bracket`` and ``rung`` labels go on every trial evaluated through the new scope
        that does not name a rung itself; unset labels are inherited.
        """
        return Scope(
            self._run,
            limit=math.inf if budget is None else budget,
            rng=self.rng if rng is None else rng,
            bracket=self.bracket if bracket is None else bracket,
            rung=self.rung if rung is None else rung,
            parent=self,
        )

    def is_better(self, a: float | None, b: float | None) -> bool:
        """Return whether score ``a`` is strictly better than ``b``; None and NaN rank last."""
        return self._run.is_better(a, b)

    def log_msg(self, msg: str) -> None:
        """Write a line to the run's text log."""
        self._run.log_msg(msg)

    async def evaluate(
        self, config: dict[str, Any], *, resource: float | None = None, rung: int | None = None
    ) -> Trial | None:
        """Evaluate one configuration and return its finished trial.

        With ``resource`` set, ``eval_fn`` is called as ``eval_fn(config, resource)`` and the
        trial costs ``resource``; otherwise it costs 1. Returns None, and runs nothing, when the
        cost does not fit the budget left or the run's time budget is over. If the caller is
        cancelled, the evaluation is cancelled too and the trial is not recorded as finished.
        """
        trial = self._run.prepare(self, config, resource, rung)
        if trial is not None:
            await self._run.execute(self, trial)
        return trial

    async def evaluate_many(
        self,
        configs: Iterable[dict[str, Any]],
        *,
        resource: float | None = None,
        rung: int | None = None,
    ) -> list[Trial]:
        """Evaluate configurations concurrently on the pool; return the trials that ran.

        The trials are in the order of ``configs``. When the budget runs out, the rest of
        ``configs`` is not consumed, so the result is a prefix.
        """
        return await self._run.execute_many(self, configs, resource, rung)

    def next_position(self) -> tuple[int, ...]:
        """Return the place of the next trial or child scope made here.

        Trials and child scopes share one numbering per scope, and a child's trials are placed
        under the child's own place. Concurrent children (hyperband's brackets, the inner runs of
        a rung) thus order their trials child by child, the same way whatever finished first.
        """
        self._count += 1
        return (*self._path, self._count)

    def _reserve(self, cost: float) -> bool:
        scope: Scope | None = self
        while scope is not None:
            if scope.spent + cost > scope._limit:
                scope._refused = True
                return False
            scope = scope._parent
        scope = self
        while scope is not None:
            scope.spent += cost
            scope = scope._parent
        return True

    def _offer_best(self, trial: Trial) -> None:
        scope: Scope | None = self
        while scope is not None:
            if scope.best is None or self._run.beats(trial, scope.best):
                scope.best = trial
            scope = scope._parent


class Run:
    """State and machinery of one ``tune()`` call."""

    def __init__(
        self,
        tuner: Tuner,
        *,
        inline: bool,
        interrupts: Interrupts | None,
        log: RunLog | None,
        replay: list[dict[str, Any]],
        strategy_name: str,
    ) -> None:
        self.tuner = tuner
        self.space = tuner.space
        self.maximize = tuner.maximize
        self.trials: list[Trial] = []
        self.stopped = False
        # Each trial's place in the order of the strategy's requests; see Scope.next_position.
        self._positions: dict[int, tuple[int, ...]] = {}
        self._log_info = logger.isEnabledFor(logging.INFO)
        self._inline = inline
        self._interrupts = interrupts
        self._log = log
        self._strategy_name = strategy_name
        self._is_async = tuner._is_async
        self._eval_fn: Callable[..., Any] = tuner.eval_fn
        self._copy_config: Callable[[dict[str, Any]], dict[str, Any]] = (
            dict.copy if self.space.immutable_values else copy.deepcopy
        )
        # Thread workers with no timeout get one queued trial per thread besides the running
        # one: a thread that finishes starts the next evaluation at once, instead of idling
        # through two cross-thread wake-ups. Threads still run at most num_workers at once.
        # With a timeout, a queued trial's deadline would run while it waits, so no queue.
        self._queue_depth = (
            2
            if tuner.executor == "thread" and not self._is_async and tuner.trial_timeout is None
            else 1
        )
        self._slots = WorkerSlots(tuner.num_workers * self._queue_depth)
        self._backend: Any = None
        self._timeout = tuner.trial_timeout
        self._deadline: float | None = None
        self._warned_abandoned = False
        self._last_checkpoint = time.perf_counter()
        self._progress = Progress(
            tuner.budget, enabled=tuner.show_loading, description=strategy_name
        )
        self._replay: dict[ReplayKey, deque[dict[str, Any]]] = {}
        for record in replay:
            key = _replay_key(
                record["config"], record.get("resource"), record.get("bracket"), record.get("rung")
            )
            self._replay.setdefault(key, deque()).append(record)
        self._next_id = 1 + max((int(record["trial_id"]) for record in replay), default=-1)
        self._known_best: tuple[float, dict[str, Any]] | None = None
        self._checked_plain_call = False
        self._checked_resource_call = False
        if tuner.start_config is not None and tuner.start_score is not None:
            self._known_best = (float(tuner.start_score), tuner.start_config)

    # ----------------------------------------------------------------- lifecycle

    async def open(self, stack: AsyncExitStack) -> None:
        """Start the workers and the time budget; ``stack`` closes them."""
        tuner = self.tuner
        if tuner.time_budget is not None:
            self._deadline = anyio.current_time() + tuner.time_budget
        if self._is_async or self._inline:
            return
        if tuner.executor == "thread":
            threads = ThreadWorkers(self._eval_fn, tuner.num_workers)
            stack.callback(threads.close)
            self._backend = threads
        elif tuner.executor == "process":
            self._backend = await stack.enter_async_context(
                ProcessWorkers(self._eval_fn, tuner.num_workers)
            )
        else:
            self._backend = ExecutorWorkers(self._eval_fn, tuner.executor)

    def root_scope(self, rng: random.Random) -> Scope:
        """Return the scope that spans the whole budget."""
        self._root = Scope(self, limit=self.tuner.budget, rng=rng)
        return self._root

    def close(self) -> None:
        """Close the progress bar and drop the trials that a cancellation left unfinished.

        Those trials are not in the log either, so a resumed run evaluates them again.
        """
        self._progress.close()
        unfinished = [trial for trial in self.trials if trial.status is TrialStatus.RUNNING]
        if unfinished:
            self.trials[:] = [
                trial for trial in self.trials if trial.status is not TrialStatus.RUNNING
            ]
            # Their reserved cost was never spent, and a resumed run spends it again.
            self._root.spent -= sum(trial.cost for trial in unfinished)

    @property
    def cost(self) -> float:
        """Cost spent so far, replayed trials included."""
        return self._root.spent

    # ----------------------------------------------------------------- trials

    def prepare(
        self, scope: Scope, config: dict[str, Any], resource: float | None, rung: int | None
    ) -> Trial | None:
        """Create the next trial and reserve its cost, or return None when it does not fit."""
        if self.stopped:
            return None
        if self._deadline is not None and anyio.current_time() >= self._deadline:
            self._stop("the time budget of %s s is over", self.tuner.time_budget)
            return None
        cost = 1 if resource is None else resource
        if resource is None:
            if not self._checked_plain_call:
                self._checked_plain_call = True
                _check_signature(self._eval_fn, ("config",))
        elif not self._checked_resource_call:
            self._checked_resource_call = True
            _check_signature(self._eval_fn, ("config", "resource"))
        if rung is None:
            rung = scope.rung
        if not scope._reserve(cost):
            if self._root._refused:
                self._stop("the budget of %s is spent", self.tuner.budget)
            return None
        if self._replay:
            trial = self._replayed(scope, config, resource, rung)
            if trial is not None:
                return trial
        trial = Trial(
            trial_id=self._next_id,
            config=config,
            cost=cost,
            resource=resource,
            bracket=scope.bracket,
            rung=rung,
        )
        self._next_id += 1
        self._positions[id(trial)] = scope.next_position()
        self.trials.append(trial)
        return trial

    def _replayed(
        self, scope: Scope, config: dict[str, Any], resource: float | None, rung: int | None
    ) -> Trial | None:
        records = self._replay.get(_replay_key(config, resource, scope.bracket, rung))
        if not records:
            return None
        trial = record_to_trial(records.popleft(), config)
        self._positions[id(trial)] = scope.next_position()
        self.trials.append(trial)
        self._finish(scope, trial, write=False)
        return trial

    def _stop(self, reason: str, value: Any) -> None:
        if not self.stopped:
            self.stopped = True
            logger.info("No new trials: %s", reason % value)

    async def execute_many(
        self,
        scope: Scope,
        configs: Iterable[dict[str, Any]],
        resource: float | None,
        rung: int | None,
    ) -> list[Trial]:
        """Run ``configs`` with up to ``num_workers`` at once; see ``Scope.evaluate_many``."""
        pending = iter(configs)
        trials: list[Trial] = []

        async def work() -> None:
            for config in pending:
                trial = self.prepare(scope, config, resource, rung)
                if trial is None:
                    return
                trials.append(trial)
                await self.execute(scope, trial)

        if self._inline:
            await work()
            return trials
        async with anyio.create_task_group() as group:
            for _ in range(self.tuner.num_workers * self._queue_depth):
                group.start_soon(work)
        return trials

    async def execute(self, scope: Scope, trial: Trial) -> None:
        """Evaluate a prepared trial and record its outcome."""
        if trial.status is not TrialStatus.RUNNING:
            return  # replayed from the log
        args = self._arguments(trial)
        if self._inline:
            await self._execute_inline(trial, args)
            self._finish(scope, trial, write=True)
            if self._log is not None:
                await self._log.flushed()
            return
        else:
            await self._slots.acquire()
            try:
                await self._execute_in_pool(trial, args)
            finally:
                self._slots.release()
        self._finish(scope, trial, write=True)

    def _arguments(self, trial: Trial) -> tuple[Any, ...]:
        config = self._copy_config(trial.config)
        return (config,) if trial.resource is None else (config, trial.resource)

    async def _execute_inline(self, trial: Trial, args: tuple[Any, ...]) -> None:
        interrupts = self._interrupts
        trial.started_at = time.time()
        start = time.perf_counter()
        try:
            if interrupts is not None:
                interrupts.inline_call = True
            try:
                output = self._eval_fn(*args)
            finally:
                if interrupts is not None:
                    interrupts.inline_call = False
        except KeyboardInterrupt:
            if interrupts is None:
                raise
            interrupts.request()
            await anyio.lowlevel.checkpoint()
            raise  # only reached if the cancellation did not arrive
        except (Exception, SystemExit) as exc:
            # SystemExit too, so that sys.exit() in eval_fn fails its trial as it does in a
            # worker thread or process, instead of ending the run.
            self._fail(trial, *describe_exception(exc), start=start)
        else:
            self._complete(trial, output, start)
        now = time.perf_counter()
        if now - self._last_checkpoint >= CHECKPOINT_INTERVAL:
            self._last_checkpoint = now
            await anyio.lowlevel.checkpoint()

    async def _execute_in_pool(self, trial: Trial, args: tuple[Any, ...]) -> None:
        logger.debug("Trial %d started", trial.trial_id)
        trial.started_at = time.time()
        start = time.perf_counter()
        call = self._eval_fn if self._is_async else self._backend.run
        try:
            if isinstance(self._backend, ThreadWorkers) and self._timeout is None:
                output, trial.started_at, duration = await self._backend.run_timed(*args)
                trial.finished_at = trial.started_at + duration
                start = time.perf_counter() - duration
            elif self._timeout is None:
                output = await call(*args)
            elif isinstance(self._backend, ProcessWorkers):
                try:
                    output = await self._backend.run(*args, timeout=self._timeout)
                except TimeoutError:
                    self._time_out(trial, start)
                    return
            else:
                # NOTE: with a user's executor the deadline counts from submission, since the
                # executor does not report when the call starts; queued calls can time out.
                with anyio.move_on_after(self._timeout) as deadline:
                    output = await call(*args)
                if deadline.cancelled_caught:
                    self._time_out(trial, start)
                    return
        except EvaluationError as exc:
            if exc.started_at is not None and exc.duration is not None:
                trial.started_at = exc.started_at
                trial.finished_at = exc.started_at + exc.duration
                start = time.perf_counter() - exc.duration
            self._fail(trial, exc.error, exc.traceback, start=start)
        except (Exception, SystemExit) as exc:
            self._fail(trial, *describe_exception(exc), start=start)
        else:
            self._complete(trial, output, start)

    def _complete(self, trial: Trial, output: Any, start: float) -> None:
        trial.duration = time.perf_counter() - start
        tuner = self.tuner
        try:
            score = tuner.score_fn(output)
        except Exception as exc:
            error, text = describe_exception(exc)
            self._fail(trial, f"score_fn failed: {error}", text, start=None)
            return
        if type(score) is not float:
            try:
                if not is_real(score):
                    raise TypeError
                score = float(score)
            except (TypeError, ValueError, OverflowError):
                # OverflowError: an int such as 10**400 is real but has no float value.
                message = _invalid_score_message(output, score, tuner._custom_score_fn)
                self._fail(trial, message, "", start=None)
                return
        try:
            trial.logged = tuner.score_log_fn(output)
        except Exception as exc:
            error, text = describe_exception(exc)
            self._fail(trial, f"score_log_fn failed: {error}", text, start=None)
            return
        trial.score = score
        trial.status = TrialStatus.OK

    def _fail(self, trial: Trial, error: str, traceback_text: str, *, start: float | None) -> None:
        if start is not None:
            trial.duration = time.perf_counter() - start
        trial.status = TrialStatus.FAILED
        trial.error = error
        trial.traceback = traceback_text or None
        trial.score = None

    def _time_out(self, trial: Trial, start: float) -> None:
        trial.duration = time.perf_counter() - start
        trial.status = TrialStatus.TIMED_OUT
        trial.error = f"timed out after {self._timeout} s"
        if (
            isinstance(self._backend, (ThreadWorkers, ExecutorWorkers))
            and not self._warned_abandoned
        ):
            self._warned_abandoned = True
            logger.warning(
                "Trial %d timed out after %s s; the tuner cannot stop its evaluation, which goes "
                "on in its thread or executor (Python cannot kill threads). Use "
                'executor="process" to kill timed-out evaluations.',
                trial.trial_id,
                self._timeout,
            )

    def _finish(self, scope: Scope, trial: Trial, *, write: bool) -> None:
        if trial.finished_at is None:
            trial.finished_at = time.time()
        if write and self._log is not None:
            self._log.write_trial(trial)
        self._progress.advance(trial.cost)
        score = trial.score
        if trial.status is TrialStatus.OK and score is not None:
            if math.isfinite(score):
                scope._offer_best(trial)
                if self._root.best is trial:
                    self._progress.show_best(score)
                    if self._log is not None and write:
                        self._log.write_message(
                            f"new best score {score!r} at trial {trial.trial_id}: "
                            f"{json.dumps(to_jsonable(trial.config))}"
                        )
            if self._log_info:
                best = self._root.best
                logger.info(
                    "Trial %d finished with score %r (best %r)",
                    trial.trial_id,
                    score,
                    None if best is None else best.score,
                )
        elif not trial.replayed:
            logger.warning("Trial %d %s: %s", trial.trial_id, trial.status.value, trial.error)

    # ----------------------------------------------------------------- best

    def is_better(self, a: float | None, b: float | None) -> bool:
        """Return whether score ``a`` is strictly better than ``b``; None and NaN rank last."""
        if a is None or math.isnan(a):
            return False
        if b is None or math.isnan(b):
            return True
        return a > b if self.maximize else a < b

    def beats(self, trial: Trial, incumbent: Trial) -> bool:
        """Return whether finite-scored ``trial`` replaces ``incumbent`` as best.

        On equal scores the earlier trial wins.

        "Earlier" is the order in which the strategy asked for the trials, so the best does not
        depend on which trial finished first.
        """
        score = trial.score
        other = incumbent.score
        if score is None or other is None:
            return other is None
        if score == other:
            return self._positions[id(trial)] < self._positions[id(incumbent)]
        return score > other if self.maximize else score < other

    def log_msg(self, msg: str) -> None:
        """Write a line to the text log, if the run has one."""
        logger.debug("log_msg: %s", msg)
        if self._log is not None:
            self._log.write_message(msg)

    def result(self) -> TuneResult:
        """Return the five-tuple result of the trials so far."""
        best_score: float | None = None
        best_config: dict[str, Any] | None = None
        best = self._root.best
        if best is not None:
            best_score = best.score
            best_config = best.config
        if self._known_best is not None and self.is_better(self._known_best[0], best_score):
            best_score, best_config = self._known_best
        if best_config is not None:
            best_config = self._copy_config(best_config)
        self.trials.sort(key=lambda trial: self._positions[id(trial)])
        completed = [trial for trial in self.trials if trial.status is TrialStatus.OK]
        return TuneResult(
            best_score=best_score,
            best_config=best_config,
            score_history=[trial.score for trial in completed],  # type: ignore[misc]
            execution_times=[trial.duration for trial in completed],  # type: ignore[misc]
            total_cost=self.cost,
        )


class WorkerSlots:
    """The run's ``num_workers`` evaluation slots, handed to waiters in arrival order.

    Works like ``anyio.CapacityLimiter`` without its per-call bookkeeping, which costs more than
    a cheap trial: taking a free slot does not suspend.
    """

    def __init__(self, total: int) -> None:
        self._free = total
        self._waiters: deque[anyio.Event] = deque()

    async def acquire(self) -> None:
        """Take a slot, waiting for one to be released if none is free."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        handed_over = anyio.Event()
        self._waiters.append(handed_over)
        try:
            await handed_over.wait()
        except BaseException:
            if handed_over.is_set():
                self.release()  # the slot arrived as we were cancelled: pass it on
            else:
                self._waiters.remove(handed_over)
            raise

    def release(self) -> None:
        """Give the slot to the longest waiter, or free it."""
        if self._waiters:
            self._waiters.popleft().set()
        else:
            self._free += 1


def _check_signature(eval_fn: Callable[..., Any], arguments: tuple[str, ...]) -> None:
    """Raise TypeError before the first trial if ``eval_fn`` cannot take these arguments."""
    try:
        signature = inspect.signature(eval_fn)
    except (TypeError, ValueError):  # no signature to read, e.g. some builtins
        return
    try:
        signature.bind(*arguments)
    except TypeError:
        mode = "in resource mode " if len(arguments) == 2 else ""
        msg = (
            f"eval_fn must accept ({', '.join(arguments)}) {mode}as positional arguments "
            f"(got {getattr(eval_fn, '__qualname__', repr(eval_fn))}{signature})"
        )
        raise TypeError(msg) from None


def _replay_key(config: Mapping[str, Any], resource: Any, bracket: Any, rung: Any) -> ReplayKey:
    plain = json.loads(json.dumps(to_jsonable(dict(config))))
    return (config_key(plain), resource, bracket, rung)


def _invalid_score_message(output: Any, score: Any, custom_score_fn: bool) -> str:
    shown = reprlib.repr(score)
    if custom_score_fn:
        return (
            f"score_fn returned {shown} of type {type(score).__name__}, which is not a real "
            "number that fits a float; make score_fn return an int or a float"
        )
    return (
        f"eval_fn returned {shown} of type {type(output).__name__}, which is not a real number "
        "that fits a float; return an int or a float, or pass score_fn=... to extract the score "
        "from the output"
    )
