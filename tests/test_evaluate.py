"""``python -m relic_rl.evaluate``: a trained run's model, statistics, returns and videos."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from relic_rl.evaluate import evaluate_run, main, record_video, resolve_model, write_video
from relic_rl.runs import RunStatus, UsageError, write_status
from relic_rl.train import main as train_main
from tests.test_train_cli import FAKE, TINY, run_cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A finished tiny run with reward normalisation (so vecnormalize.pkl exists) and a checkpoint."""
    log_dir = tmp_path_factory.mktemp("eval_runs")
    args = ["--env", FAKE, *TINY, "normalize=true", "--quiet", "--log-dir", str(log_dir), "--run-name", "run"]
    assert train_main(args) == 0
    yield log_dir / "run"


def test_evaluate_cli_prints_returns_and_writes_a_gif(run_dir: Path, tmp_path: Path) -> None:
    video = tmp_path / "episode.gif"
    result = run_cli(
        "relic_rl.evaluate", str(run_dir), "--episodes", "2", "--video", str(video), cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"model: {run_dir / 'final_model.zip'}" in lines
    assert "2 episodes (deterministic, seed 10000)" in lines
    mean_line = next(line for line in lines if line.startswith("mean reward: "))
    assert " +- " in mean_line
    returns_line = next(line for line in lines if line.startswith("episode returns: "))
    assert len(returns_line.split(": ")[1].split()) == 2
    assert any(line.startswith(f"video: {video} (50 frames") for line in lines)
    frames = iio.imread(video, index=None)
    assert frames.shape == (50, 40, 40, 3)


def test_evaluate_run_is_seeded_and_uses_the_saved_statistics(run_dir: Path) -> None:
    assert (run_dir / "vecnormalize.pkl").is_file()
    first = evaluate_run(run_dir, episodes=3, device="cpu")
    second = evaluate_run(run_dir, episodes=3, device="cpu")
    assert first.returns == second.returns and len(first.returns) == 3
    assert first.lengths == [50, 50, 50]
    assert first.mean == pytest.approx(np.mean(first.returns)) and first.std >= 0
    other = evaluate_run(run_dir, episodes=3, seed=1, deterministic=False)
    assert other.seed == 1 and not other.deterministic


def test_checkpoints_can_be_evaluated(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, stats = resolve_model(run_dir, "latest")
    assert (
        model.name == "model_128_steps.zip"
        and stats is not None
        and stats.name == "vecnormalize_128_steps.pkl"
    )
    assert resolve_model(run_dir, "checkpoints/model_128_steps.zip") == (model, stats)
    assert resolve_model(run_dir, None) == (run_dir / "final_model.zip", run_dir / "vecnormalize.pkl")
    assert main([str(run_dir), "--episodes", "1", "--checkpoint", "latest", "--stochastic"]) == 0
    out = capsys.readouterr().out
    assert "model_128_steps.zip" in out and "1 episode (stochastic" in out


def test_mp4_video(run_dir: Path, tmp_path: Path) -> None:
    path, n_frames, episode_return = record_video(run_dir, tmp_path / "episode.mp4", domain_randomize=False)
    assert path.is_file() and n_frames == 50 and np.isfinite(episode_return)
    # Odd frame sizes are padded to even ones for H.264.
    odd = [np.full((7, 9, 3), 200, dtype=np.uint8)] * 3
    write_video(tmp_path / "odd.mp4", odd, fps=10)
    assert iio.imread(tmp_path / "odd.mp4", index=0).shape == (8, 10, 3)


def _error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_errors(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is not a relic-rl run folder" in _error([str(tmp_path)], capsys)
    assert "is not a folder" in _error([str(tmp_path / "missing")], capsys)
    assert "must end in .mp4 or .gif" in _error([str(run_dir), "--video", str(tmp_path / "v.avi")], capsys)
    assert "no such file" in _error([str(run_dir), "--checkpoint", "nope.zip"], capsys)
    assert "expected an integer >= 1" in _error([str(run_dir), "--episodes", "0"], capsys)
    assert "not allowed with argument" in _error([str(run_dir), "--deterministic", "--stochastic"], capsys)


def test_unfinished_run_suggests_a_checkpoint(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "interrupted"
    shutil.copytree(run_dir, copy)
    (copy / "final_model.zip").unlink()
    write_status(copy, RunStatus("interrupted", 128, 256, "interrupted"))
    err = _error([str(copy)], capsys)
    assert "has no final_model.zip (the run is interrupted" in err and "--checkpoint latest" in err
    shutil.rmtree(copy / "checkpoints")
    assert "no checkpoint either" in _error([str(copy)], capsys)
    assert "has no checkpoint" in _error([str(copy), "--checkpoint", "latest"], capsys)


def test_missing_video_backend(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(UsageError, match=r'imageio-ffmpeg.*pip install "relic-rl\[video\]"'):
        write_video(tmp_path / "v.mp4", [np.zeros((4, 4, 3), np.uint8)], fps=10)
    monkeypatch.setitem(sys.modules, "imageio", None)
    with pytest.raises(UsageError, match=r'needs imageio.*pip install "relic-rl\[video\]"'):
        record_video(run_dir, tmp_path / "v.gif")
