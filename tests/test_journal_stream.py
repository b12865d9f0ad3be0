"""The trial journal is streamed by the async writer and is on disk before the next trial."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiofiles
import pytest

from async_tuner import RandomTuner

SPACE = {"x": {"range": (0.0, 1.0)}}


def journal_lines(folder: Path) -> int:
    path = folder / "trials.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("workers", [1, 2], ids=["inline", "pool"])
def test_journal_holds_finished_trials_before_next_starts(tmp_path: Path, workers: int) -> None:
    folder = tmp_path / "runs" / "one"
    seen: list[int] = []

    def count_logged(config: dict[str, Any]) -> float:
        seen.append(journal_lines(folder))
        return float(config["x"])

    tuner = RandomTuner(
        SPACE,
        count_logged,
        budget=6,
        num_workers=workers,
        log=True,
        log_dir=tmp_path,
        run_dir="runs",
        run_name="one",
        show_loading=False,
    )
    tuner.tune(seed=1)

    if workers == 1:
        # Each evaluation starts only after every earlier trial's line is on disk.
        assert seen == list(range(6))
    assert journal_lines(folder) == 6


@pytest.mark.anyio
async def test_journal_written_through_async_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    opened: list[str] = []
    original = aiofiles.open

    def spy(path: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(Path(path).name)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(aiofiles, "open", spy)
    tuner = RandomTuner(
        SPACE,
        lambda config: config["x"],
        budget=3,
        log=True,
        log_dir=tmp_path,
        run_dir="runs",
        run_name=anyio_backend,
        show_loading=False,
    )

    await tuner.tune_async(seed=2)

    expected = ["trials.jsonl", "log.txt"] if anyio_backend == "asyncio" else []
    assert opened == expected
    assert journal_lines(tmp_path / "runs" / anyio_backend) == 3
