"""The Ray backend of ``relic_rl.ablate`` on a private local Ray instance (loopback only)."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ray
pytest.importorskip("ray", reason="the Ray backend is optional: pip install 'relic-rl[ray]'")

from relic_rl import ablate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAKE = "tests.fake_pixel_env:FakePixel-v0"


TINY = [
    "--n-envs",
    "2",
    "--eval-freq",
    "128",
    "--eval-episodes",
    "2",
    "--hyperparams",
    "n_steps=64",
    "batch_size=64",
    "n_epochs=1",
]


def test_ray_backend_runs_a_tiny_grid_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # Ray workers start the training subprocesses
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "abl"
    argv = [
        "--env",
        FAKE,
        "--seeds",
        "0",
        "1",
        "--total-timesteps",
        "256",
        "--out",
        str(out),
        "--backend",
        "ray",
        "--workers",
        "2",  # a 2-CPU local instance: two runs at a time
        "--report-reps",
        "200",
        *TINY,
    ]
    code = ablate.main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    names = [
        "kl_weight=1.0__seed=0",
        "kl_weight=0.0__seed=0",
        "kl_weight=1.0__seed=1",
        "kl_weight=0.0__seed=1",
    ]
    for name in names:
        run_dir = out / "runs" / name
        assert yaml.safe_load((run_dir / "status.yaml").read_text())["state"] == "finished"
        assert yaml.safe_load((run_dir / "cell.yaml").read_text())["seed"] == int(name[-1])
        with (run_dir / "evaluations.csv").open(newline="") as f:
            assert [r["timesteps"] for r in csv.DictReader(f)] == ["128", "256"]
        # The Ray task wrote the same per-run log as the local backend.
        assert "relic_rl.train" in (out / "logs" / f"{name}.log").read_text()
    for report in ("results.csv", "summary.md", "curves.png", "curves.pdf"):
        assert (out / report).is_file()
    assert "4/4 runs finished" in captured.out

    # Re-running skips everything without starting Ray again.
    code = ablate.main(argv)
    captured = capsys.readouterr()
    assert code == 0 and "4 run(s) already finished, skipped." in captured.out


def test_ctrl_c_reaches_the_training_process_inside_the_ray_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ray workers run tasks with SIGINT blocked; the training process must still get the
    # forwarded SIGINT, save a checkpoint and stop (not train on to the end).
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "abl"
    argv = [
        "--env",
        FAKE,
        "--seeds",
        "0",
        "--kl-weights",
        "1",
        "--total-timesteps",
        # Long enough that the run cannot finish while SIGINT travels through Ray.
        "4096",
        "--checkpoint-freq",
        "128",
        "--out",
        str(out),
        "--backend",
        "ray",
        "--workers",
        "1",
        "--report-reps",
        "100",
        *TINY,
    ]
    run_dir = out / "runs" / "kl_weight=1.0__seed=0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "relic_rl.ablate", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        end = time.monotonic() + 180
        while not any((run_dir / "checkpoints").glob("model_*_steps.zip")) and time.monotonic() < end:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    status = yaml.safe_load((run_dir / "status.yaml").read_text())
    assert status["state"] == "interrupted" and status["timesteps"] < 4096, status

    code = ablate.main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert "resumed  kl_weight=1.0__seed=0" in captured.out
    with (run_dir / "evaluations.csv").open(newline="") as f:
        assert [r["timesteps"] for r in csv.DictReader(f)] == [str(128 * k) for k in range(1, 33)]
