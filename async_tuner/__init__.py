"""Concurrent black-box parameter tuning on anyio.

A drop-in re-creation of ``rekall.tuner``: the same constructor arguments, ``tune()`` five-tuple
and strategies, run as coroutines on one bounded pool of workers (threads, processes, any
``concurrent.futures.Executor``, or the event loop itself for ``async def`` functions).
"""

from ._engine import Tuner
from ._run import Scope
from ._types import AsyncTunerError, ResumeError, SearchSpaceError, Trial, TrialStatus, TuneResult
from .strategies._coordinate_descent import CoordinateDescentTuner
from .strategies._grid import GridTuner
from .strategies._hyperband import HyperbandTuner
from .strategies._random import RandomTuner
from .strategies._successive_halving import SuccessiveHalvingTuner

__all__ = [
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
]
__version__ = "0.1.0"
