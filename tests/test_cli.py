"""The ``async-tuner`` command and its digits demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from async_tuner import _cli

pytest.importorskip("sklearn")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = _cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def only_run_folder(log_dir: Path) -> Path:
    folders = [path.parent for path in log_dir.rglob("trials.jsonl")]
    assert len(folders) == 1
    return folders[0]


def test_demo_random_reports_logged_best(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--budget", "4", "--workers", "2", "--no-progress", "--seed", "1"]
    code, out, _ = run_cli([*argv, "--log-dir", str(tmp_path)], capsys)

    folder = only_run_folder(tmp_path)
    records = [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]
    scores = [record["score"] for record in records if record["status"] == "ok"]
    report = json.loads((folder / "tuner_report.json").read_text())
    assert code == 0
    assert len(records) == 4
    assert report["best_score"] == max(scores)
    assert f"Best cross-validated accuracy: {max(scores):.4f}" in out
    assert f"Run log: {folder}" in out


def test_demo_hyperband_stays_within_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--strategy", "hyperband", "--budget", "30", "--no-progress"]
    code, out, _ = run_cli([*argv, "--log-dir", str(tmp_path)], capsys)

    folder = only_run_folder(tmp_path)
    records = [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]
    assert code == 0
    assert sum(record["cost"] for record in records) <= 30
    assert all(record["resource"] is not None for record in records)
    assert "Run log:" in out


def test_demo_without_sklearn_names_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)

    code, out, err = run_cli(["demo", "--budget", "2", "--log-dir", str(tmp_path)], capsys)

    assert code == _cli.MISSING_DEPENDENCY_EXIT_CODE
    assert 'pip install "async_tuner[demo]"' in err
    assert out == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["demo", "--workers", "0"], id="zero-workers"),
        pytest.param(["demo", "--budget", "-3"], id="negative-budget"),
        pytest.param(["demo", "--strategy", "annealing"], id="unknown-strategy"),
        pytest.param(["demo", "--strategy", "grid", "--seed", "3"], id="seed-with-grid"),
    ],
)
def test_demo_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(argv)

    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err
