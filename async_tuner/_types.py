"""Public record types: trial states, trial records, the result of a run, and the errors."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, NamedTuple


class TrialStatus(enum.StrEnum):
    """State of one trial, equal to the word that the run log stores."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


@dataclasses.dataclass(slots=True, eq=False)
class Trial:
    """One evaluation of one configuration.

    ``score`` is set for trials with status ``ok`` and may be NaN. ``error`` contains the error's
    type and message as text and ``traceback`` the formatted traceback; no exception object is
    kept, so a failed evaluation's frames are freed at once. ``duration`` is in seconds,
    ``started_at`` and ``finished_at`` are Unix timestamps.
    """

    trial_id: int
    config: dict[str, Any]
    status: TrialStatus = TrialStatus.RUNNING
    score: float | None = None
    logged: Any = None
    error: str | None = None
    traceback: str | None = None
    duration: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    cost: float = 1
    resource: float | None = None
    bracket: int | None = None
    rung: int | None = None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        """Whether the evaluation finished and returned a valid score."""
        return self.status is TrialStatus.OK


class TuneResult(NamedTuple):
    """Result of a run; unpacks like the original five-tuple.

    ``score_history`` and ``execution_times`` hold the completed trials in submission order;
    failed and timed-out trials are in ``Tuner.trials`` only. ``best_score`` and ``best_config``
    are ``None`` when no trial completed with a finite score.
    """

    best_score: float | None
    best_config: dict[str, Any] | None
    score_history: list[float]
    execution_times: list[float]
    total_cost: float


class AsyncTunerError(Exception):
    """Base class of the errors that async_tuner raises itself."""


class SearchSpaceError(AsyncTunerError, ValueError):
    """Raised when a search space or a configuration does not fit the documented form."""


class ResumeError(AsyncTunerError, ValueError):
    """Raised when a run log cannot be resumed: it is missing, or describes another run."""
