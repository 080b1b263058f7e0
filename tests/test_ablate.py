"""Tests of ``python -m relic_rl.ablate``: grid parsing, every error path, and tiny grids end to end.

The end-to-end tests train for a few hundred steps on the fake pixel env (a few seconds a run);
the local backend runs them as real ``relic_rl.train`` subprocesses.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from relic_rl import ablate
from relic_rl.ablation import grid as grid_mod
from relic_rl.ablation.folder import config_diff
from relic_rl.ablation.grid import (
    Cell,
    GridError,
    assemble_grid,
    expand_cells,
    parse_grid_specs,
    split_values,
)
from relic_rl.ablation.plan import AblationSpec, make_plan, write_ablation_files
from relic_rl.ablation.progress import Progress
from relic_rl.ablation.train_args import AblateError, check_train_args, split_hyperparams
from relic_rl.extractor import ReLICExtractor
from relic_rl.report import load_ablation, plot_curves

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


class CrashOnProjectionDim17(ReLICExtractor):
    """Builds fine (so it passes every preflight) but crashes in the first update when
    ``projection_dim == 17``: a run that fails mid-training for one grid value only."""

    def augment(self, obs: torch.Tensor) -> torch.Tensor:
        if self.config.projection_dim == 17:
            raise RuntimeError("deliberate crash for the ablation test")
        return super().augment(obs)


@pytest.fixture(autouse=True)
def _train_subprocesses_find_the_fake_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The training subprocesses import tests.fake_pixel_env (module:EnvId) from the repo root.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(tmp_path)
    if str(ROOT) not in sys.path:
        monkeypatch.syspath_prepend(str(ROOT))


def args_for(out: Path, *extra: str, seeds: tuple[str, ...] = ("0", "1"), steps: int = 256) -> list[str]:
    return [
        "--env",
        FAKE,
        "--seeds",
        *seeds,
        "--total-timesteps",
        str(steps),
        "--out",
        str(out),
        "--report-reps",
        "200",
        *extra,
        *TINY,
    ]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = ablate.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def eval_rows(run_dir: Path, name: str = "evaluations.csv") -> list[dict[str, str]]:
    with (run_dir / name).open(newline="") as f:
        return list(csv.DictReader(f))


def mtimes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()
    }


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


# --------------------------------------------------------------------------------------------
# Grid parsing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1,0.5", ["0.1", "0.5"]),
        ("shift,crop", ["shift", "crop"]),
        ("shift,crop(36,4)", ["shift", "crop(36,4)"]),
        ("shift,intensity;crop(36),intensity", ["shift,intensity", "crop(36),intensity"]),
        ("shift;crop", ["shift", "crop"]),
        ("[256,256],[512]", ["[256,256]", "[512]"]),
        ("{a: 1, b: 2},{a: 3}", ["{a: 1, b: 2}", "{a: 3}"]),
        (" 1 , 2 ", ["1", "2"]),
    ],
)
def test_split_values(text: str, expected: list[str]) -> None:
    assert split_values(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("a,,b", "empty value"), ("a;", "empty value"), ("crop(36", "never closed"), ("a)", "closes nothing")],
)
def test_split_values_errors(text: str, message: str) -> None:
    with pytest.raises(GridError, match=message):
        split_values(text)


def test_parse_grid_specs_types_and_aliases() -> None:
    grid = parse_grid_specs(
        ["temperature=1,0.5", "relic.n_views=2,3", "learning_rate=1e-3,3e-4", "augmentation=shift,crop(36,4)"]
    )
    assert grid == {
        "temperature": [1.0, 0.5],
        "n_views": [2, 3],
        "learning_rate": [0.001, 0.0003],
        "augmentation": ["shift", "crop(36,4)"],
    }
    assert isinstance(grid["temperature"][0], float) and isinstance(grid["n_views"][0], int)
    assert parse_grid_specs(["critic_hidden_dims=[256,256],[64]"]) == {
        "critic_hidden_dims": [[256, 256], [64]]
    }


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["temperature"], "not of the form KEY=V1,V2"),
        (["=0.1"], "not of the form KEY=V1,V2"),
        (["temperature="], "has no values"),
        (["temperature=0.1,"], "empty value"),
        (["temperature=0.1", "temperature=0.5"], "gives 'temperature' twice"),
        (["temperature=0.1,0.1"], "repeats the value 0.1"),
        (["kl_weight=1,1.0"], "repeats the value 1.0"),
        (["seed=0,1"], "use --seeds"),
        (["aux=relic,none"], "use --baseline"),
        (["total_timesteps=1,2"], "use --total-timesteps"),
        (["n_steps=[1,"], "unbalanced|never closed"),
    ],
)
def test_parse_grid_specs_errors(specs: list[str], message: str) -> None:
    with pytest.raises(GridError, match=message):
        parse_grid_specs(specs)


def test_assemble_grid() -> None:
    assert assemble_grid(None, {}, 1.0) == {"kl_weight": [1.0, 0.0]}
    assert assemble_grid([0, 0.5], {"temperature": [0.1]}, 1.0) == {
        "kl_weight": [0.0, 0.5],
        "temperature": [0.1],
    }
    assert assemble_grid(None, {"kl_weight": [2.0]}, 1.0) == {"kl_weight": [2.0]}
    with pytest.raises(GridError, match="both set the KL axis"):
        assemble_grid([1.0], {"kl_weight": [2.0]}, 1.0)
    with pytest.raises(GridError, match="repeats"):
        assemble_grid([1, 1.0], {}, 1.0)
    with pytest.raises(GridError, match="preset kl_weight is 0"):
        assemble_grid(None, {}, 0.0)


def test_expand_cells_names_variants_and_order() -> None:
    cells = expand_cells({"kl_weight": [1.0, 0.0], "n_steps": [64]}, [0, 1], baseline=True)
    assert [c.name for c in cells[:3]] == [
        "kl_weight=1.0__n_steps=64__seed=0",
        "kl_weight=0.0__n_steps=64__seed=0",
        "baseline__n_steps=64__seed=0",
    ]
    assert [c.seed for c in cells] == [0, 0, 0, 1, 1, 1]  # seed-major
    assert cells[0].variant == "kl_weight=1.0, n_steps=64"
    assert cells[0].params == {"kl_weight": 1.0, "n_steps": 64, "aux": "relic"}
    # The baseline keeps the non-ReLIC axes only.
    assert cells[2].variant == "baseline (no aux), n_steps=64"
    assert cells[2].params == {"n_steps": 64, "aux": "none"} and cells[2].is_baseline
    only_kl = expand_cells({"kl_weight": [1.0]}, [3], baseline=True)
    assert only_kl[1] == Cell("baseline__seed=3", "baseline (no aux)", {"aux": "none"}, 3)


def test_cell_names_are_file_system_safe_and_unique() -> None:
    cells = expand_cells({"augmentation": ["crop(36,4)", "crop(36_4)"]}, [0], baseline=False)
    names = [c.name for c in cells]
    assert len(set(names)) == 2
    assert all(grid_mod._SAFE_NAME.search(n.replace("__", "")) is None for n in names)
    with pytest.raises(GridError, match="repeats"):
        expand_cells({"kl_weight": [1.0]}, [0, 0], baseline=False)
    with pytest.raises(GridError, match="empty"):
        expand_cells({"kl_weight": []}, [0], baseline=False)


def test_split_hyperparams_and_train_arg_checks() -> None:
    rest, items = split_hyperparams(
        ["--n-envs", "2", "--hyperparams", "a=1", "b=2", "--quiet", "--hyperparams=c=3"]
    )
    assert rest == ["--n-envs", "2", "--quiet"] and items == ["a=1", "b=2", "c=3"]
    check_train_args(["--n-envs", "2", "--hyperparams", "n_steps=64"], ["kl_weight", "temperature"])
    for bad, message in [
        (["--seed", "1"], "use --seeds"),
        (["--seed=1"], "use --seeds"),
        (["--aux", "none"], "use --baseline"),
        (["--kl-weight", "0.5"], "use --kl-weights"),
        (["--resume", "x"], "re-run the ablation"),
        (["--temperature", "0.2"], "contradicts the grid"),
        (["--hyperparams", "relic.temperature=0.2"], "contradicts the grid"),
        (["--hyperparams", "relic.kl_weight=0.2"], "contradicts the grid"),
        (["--hyperparams", "n_timesteps=5"], "use --total-timesteps"),
    ]:
        with pytest.raises(AblateError, match=message):
            check_train_args(bad, ["kl_weight", "temperature"])


def test_config_diff_names_dotted_keys() -> None:
    old = {"agent": {"n_steps": 64, "relic": {"temperature": 0.1}}, "seed": 0, "meta": {"created": "x"}}
    new = {
        "agent": {"n_steps": 128, "relic": {"temperature": 0.1, "clean_view": True}},
        "seed": 0,
        "meta": {},
    }
    assert config_diff(old, new) == [("agent.n_steps", 64, 128), ("agent.relic.clean_view", None, True)]
    assert config_diff({"a": [1, 2]}, {"a": (1, 2)}) == []
    assert config_diff({"a": 1}, {"a": True}) == [("a", 1, True)]


def test_progress_lines_and_live_block() -> None:
    stream = io.StringIO()
    progress = Progress(2, already=1, stream=stream)
    progress.started("a")
    progress.update("a", 64, 256)
    progress.ended("a", "finished")
    progress.started("b", "resumed")
    progress.ended("b", "failed", "exit code 1 (log: x.log)")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines == [
        "  started  a  (1/3 finished, 0 failed, 1 running)",
        " finished  a  (2/3 finished, 0 failed, 0 running)",
        "  resumed  b  (2/3 finished, 0 failed, 1 running)",
        "   failed  b: exit code 1 (log: x.log)  (2/3 finished, 1 failed, 0 running)",
    ]
    live = io.StringIO()
    progress = Progress(1, stream=live, live=True)
    progress.started("a")
    progress.update("a", 128, 256)
    progress.ended("a", "finished")
    progress.close()
    assert "finished  a" in live.getvalue()


def test_observed_timesteps_reads_status_then_the_sb3_progress_log(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert ablate.observed_timesteps(run_dir) is None
    (run_dir / "tb").mkdir(parents=True)
    (run_dir / "status.yaml").write_text(
        yaml.safe_dump({"state": "running", "timesteps": 128, "total_timesteps": 1024})
    )
    assert ablate.observed_timesteps(run_dir) == 128
    progress = run_dir / "tb" / "progress.csv"
    progress.write_text("time/iterations,time/total_timesteps\n1,256\n2,512\n")
    assert ablate.observed_timesteps(run_dir) == 512
    progress.write_text("time/iterations,time/total_timesteps\n1,256\n2\n")  # a row being rewritten
    assert ablate.observed_timesteps(run_dir) == 128


# --------------------------------------------------------------------------------------------
# Command line: dry run and error paths (no training)
# --------------------------------------------------------------------------------------------


def test_dry_run_prints_grid_and_cost_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "abl"
    code, stdout, err = run_main(
        args_for(out, "--dry-run", "--baseline", "--grid", "temperature=0.1,0.5", seeds=("0", "1", "2")),
        capsys,
    )
    assert code == 0, err
    assert "kl_weight: 1.0, 0.0" in stdout and "temperature: 0.1, 0.5" in stdout  # preset kl_weight is 1.0
    assert "runs: 15 = 5 variants x 3 seeds; cost: 15 runs x 256 steps = 3,840 env steps" in stdout
    assert "baseline (no aux)" in stdout and "new       kl_weight=0.0__temperature=0.5__seed=2" in stdout
    assert "--kl-weight 1.0 --temperature 0.1" in stdout  # the train command of the first cell
    assert "note:" not in stdout
    assert not out.exists()
    # Too few evaluations for learning curves: said up front.
    code, stdout, err = run_main(
        [*args_for(out, "--dry-run", "--kl-weights", "1"), "--eval-freq", "1000"], capsys
    )
    assert code == 0, err
    assert "note: eval_freq 1,000 with 256 steps gives 1 evaluation(s) per run" in stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--grid", "temperature="], "has no values"),
        (["--grid", "temperature=0.1,,0.5"], "empty value"),
        (["--kl-weights", "1", "1.0"], "--kl-weights repeats the value 1.0"),
        (["--kl-weights", "-1"], "expected a number >= 0"),
        (["--grid", "kl_weight=0,1", "--kl-weights", "1", "0"], "both set the KL axis"),
        (["--grid", "temperature=0.1,0.5", "--temperature", "0.2"], "contradicts the grid"),
        (["--grid", "n_steps=32,64"], "contradicts the grid"),  # TINY sets --hyperparams n_steps=64
        (["--seed", "3"], "use --seeds"),
        (["--aux", "byol"], "invalid choice"),
        (["--kl-weight", "0.5"], "use --kl-weights"),
        (["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
        (["--grid", "temprature=0.1,0.5"], "Unknown grid key"),
        (["--grid", "n_views=1,2"], "n_views"),  # fails ReLICConfig validation, naming the cell
        (["--ray-address", "auto"], "need --backend ray"),
    ],
)
def test_user_errors_exit_2_with_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, _, err = run_main(args_for(tmp_path / "abl", "--dry-run", *extra), capsys)
    assert code == 2
    assert err.startswith("python -m relic_rl.ablate: error:") and message in err, err
    assert "Traceback" not in err


def test_unknown_grid_key_lists_the_valid_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(args_for(tmp_path / "abl", "--dry-run", "--grid", "temprature=0.1"), capsys)
    assert code == 2
    for valid in (
        "temperature",
        "augmentation",
        "n_views",
        "aux_weight",
        "target_momentum",
        "learning_rate",
        "n_steps",
    ):
        assert valid in err


def test_repeated_seeds_and_missing_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(args_for(tmp_path / "abl", "--dry-run", seeds=("0", "1", "0")), capsys)
    assert code == 2 and "--seeds repeats [0]" in err
    code, _, err = run_main(["--seeds", "0"], capsys)
    assert code == 2 and "--env" in err


def test_ray_backend_without_ray_says_how_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code, _, err = run_main(args_for(tmp_path / "abl", "--backend", "ray"), capsys)
    assert code == 2 and 'pip install "relic-rl[ray]"' in err


def test_out_that_is_not_an_ablation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    code, _, err = run_main(args_for(tmp_path / "busy", "--dry-run"), capsys)
    assert code == 2 and "not an ablation folder" in err
    (tmp_path / "file").write_text("x")
    code, _, err = run_main(args_for(tmp_path / "file", "--dry-run"), capsys)
    assert code == 2 and "is a file" in err


def _plan(out: Path, *extra: str, seeds: tuple[str, ...] = ("0", "1")) -> Any:
    parser = ablate.build_parser()
    args, train_args = parser.parse_known_args(args_for(out, *extra, seeds=seeds))
    return make_plan(
        env_id=args.env,
        seeds=args.seeds,
        total_timesteps=args.total_timesteps,
        kl_weights=args.kl_weights,
        grid_specs=args.grid,
        baseline=args.baseline,
        train_args=train_args,
        out=out,
        command="test",
        check_models=False,
    )


def test_out_holding_another_ablation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "abl"
    write_ablation_files(_plan(out))
    # The same command is accepted ...
    code, _, err = run_main(args_for(out, "--dry-run"), capsys)
    assert code == 0, err
    # ... another one is not, and the message says what differs.
    code, _, err = run_main(args_for(out, "--dry-run", "--baseline", seeds=("0", "1", "2")), capsys)
    assert code == 2
    assert "holds another ablation" in err and "seeds: [0, 1] there, [0, 1, 2] now" in err
    assert "baseline" in err and "another --out" in err


def test_changed_config_in_a_run_folder_names_the_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "abl"
    plan = _plan(out)
    write_ablation_files(plan)
    cell = plan.cells[0]
    run_dir = out / "runs" / cell.cell.name
    run_dir.mkdir(parents=True)
    config = dict(cell.config)
    config["agent"] = {**config["agent"], "n_epochs": 3, "gamma": 0.9}
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**config, "meta": {"created": "yesterday"}}))
    (run_dir / "status.yaml").write_text(
        yaml.safe_dump({"state": "interrupted", "timesteps": 0, "total_timesteps": 256})
    )
    code, _, err = run_main(args_for(out, "--dry-run"), capsys)
    assert code == 2
    assert cell.cell.name in err and "agent.n_epochs: 3 in the folder, 1 now" in err
    assert "agent.gamma: 0.9 in the folder" in err and "meta" not in err


def test_foreign_files_in_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "abl"
    plan = _plan(out)
    write_ablation_files(plan)
    run_dir = out / "runs" / plan.cells[1].cell.name
    run_dir.mkdir(parents=True)
    (run_dir / "model.zip").write_text("x")
    code, _, err = run_main(args_for(out, "--dry-run"), capsys)
    assert code == 2 and "no config.yaml" in err and "model.zip" in err


# --------------------------------------------------------------------------------------------
# End to end on the local backend
# --------------------------------------------------------------------------------------------


def test_local_grid_end_to_end_then_rerun_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "abl"
    argv = args_for(out, "--workers", "2")
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, stdout + err
    names = [
        "kl_weight=1.0__seed=0",
        "kl_weight=0.0__seed=0",
        "kl_weight=1.0__seed=1",
        "kl_weight=0.0__seed=1",
    ]
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(names)
    for name in names:
        run_dir = out / "runs" / name
        assert yaml.safe_load((run_dir / "status.yaml").read_text())["state"] == "finished"
        cell = yaml.safe_load((run_dir / "cell.yaml").read_text())
        assert cell["variant"] == name.split("__")[0] and cell["params"]["aux"] == "relic"
        assert [r["timesteps"] for r in eval_rows(run_dir)] == ["128", "256"]
        assert (out / "logs" / f"{name}.log").is_file()
        # The ablation wrote the run folder from the cell's resolved config and its process
        # started it with --resume: the train command line is recorded, not re-parsed.
        recorded, started = (run_dir / "command.txt").read_text().splitlines()
        assert recorded.startswith("python -m relic_rl.train --env") and f"--run-name {name}" in recorded
        assert started.startswith("# started ") and started.endswith(f"--resume {run_dir} --no-progress")
        assert f"--resume {run_dir}" in (out / "logs" / f"{name}.log").read_text()
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["seed"] == int(name[-1]) and config["meta"]["command"] == recorded
    stored = yaml.safe_load((out / "ablation.yaml").read_text())
    assert (
        stored["grid"] == {"kl_weight": [1.0, 0.0]}
        and stored["seeds"] == [0, 1]
        and stored["baseline"] is False
    )
    assert stored["command"].startswith("python -m relic_rl.ablate --env")
    # The report: results.csv with one row per run and evaluation, summary.md, one-panel curves.
    with (out / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["variant"] for r in rows} == {"kl_weight=1.0", "kl_weight=0.0"}
    summary = (out / "summary.md").read_text()
    assert "## KL on vs off" in summary and "| kl_weight=1.0 | kl_weight=0.0 |" in summary
    assert (out / "curves.pdf").stat().st_size > 0
    assert png_size(out / "curves.png") == (1400, 600)  # 7 x 3 inches at 200 dpi: one panel
    figure = plot_curves(load_ablation(out), reps=50)
    assert len(figure.axes) == 1 and figure.axes[0].get_title() == "In-distribution evaluation"
    lines = figure.axes[0].get_lines()
    means = [line for line in lines if not line.get_label().startswith("_")]
    assert len(means) == 2 and len(lines) == 2 * (1 + 2)  # per variant: its mean and each of 2 seeds
    assert "4/4 runs finished" in stdout
    # The TensorBoard HParams export: one run per cell.
    assert sorted(p.name for p in (out / "hparams").iterdir()) == sorted(names)
    assert all(any((out / "hparams" / n).glob("events.out.tfevents.*")) for n in names)

    # Re-running the same command trains nothing and touches no file of the finished runs.
    before = mtimes(out / "runs")
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, err
    assert "4 run(s) already finished, skipped." in stdout and "started" not in stdout
    assert mtimes(out / "runs") == before


def test_single_evaluation_curves_are_drawn_as_points(tmp_path: Path) -> None:
    # eval_freq >= the budget leaves one evaluation per run: the figure must still show it.
    out = tmp_path / "abl"
    plan = _plan(out, "--kl-weights", "1", "0")
    write_ablation_files(plan)
    for planned in plan.cells:
        run_dir = out / "runs" / planned.cell.name
        run_dir.mkdir()
        (run_dir / "cell.yaml").write_text(yaml.safe_dump(planned.cell.to_yaml()))
        (run_dir / "status.yaml").write_text("state: finished\n")
        final = 10.0 * planned.cell.params["kl_weight"] + planned.cell.seed
        (run_dir / "evaluations.csv").write_text(
            f"timesteps,mean_reward,std_reward,episode_rewards\n256,{final},0,{final}\n"
        )
    axes = plot_curves(load_ablation(out), reps=50).axes[0]
    means = [line for line in axes.get_lines() if str(line.get_label()).startswith("kl_weight")]
    assert [m.get_marker() for m in means] == ["o", "o"]
    assert [np.asarray(m.get_ydata()).tolist() for m in means] == [[10.5], [0.5]]


def _train_pids(*fragments: str) -> list[int]:
    """Live ``relic_rl.train`` processes whose command line contains every fragment (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(part.decode(errors="replace") for part in cmdline)
        if "relic_rl.train" in text and all(f in text for f in fragments):
            pids.append(int(entry.name))
    return pids


def _kill_when_checkpointed(
    run_dir: Path, sig: int, deadline_s: float = 120.0
) -> tuple[threading.Thread, list[int]]:
    """In the background: wait for the run's first checkpoint, then send ``sig`` to its process."""
    killed: list[int] = []

    def watch() -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if any((run_dir / "checkpoints").glob("model_*_steps.zip")):
                for pid in _train_pids(f"--resume {run_dir}"):
                    os.kill(pid, sig)
                    killed.append(pid)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, killed


@pytest.mark.skipif(
    not Path("/proc/self/cmdline").exists(), reason="finds the training process through /proc"
)
def test_killed_run_is_failed_with_its_log_and_rerun_resumes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "abl"
    argv = args_for(out, "--kl-weights", "1", "--workers", "2", "--checkpoint-freq", "128", steps=1024)
    victim, other = out / "runs" / "kl_weight=1.0__seed=0", out / "runs" / "kl_weight=1.0__seed=1"
    watcher, killed = _kill_when_checkpointed(victim, signal.SIGKILL)
    code, stdout, err = run_main(argv, capsys)
    watcher.join()
    assert killed, "the run finished before it could be killed"
    # The killed run is failed, with its log; the other one finished; the exit code says so.
    assert code == 1, stdout + err
    log = out / "logs" / f"{victim.name}.log"
    assert f"failed: {victim.name}: killed by SIGKILL" in err and str(log) in err
    status = yaml.safe_load((victim / "status.yaml").read_text())
    assert status["state"] == "failed" and "SIGKILL" in status["message"] and str(log) in status["message"]
    assert yaml.safe_load((other / "status.yaml").read_text())["state"] == "finished"
    uninterrupted = [r["timesteps"] for r in eval_rows(other)]
    assert uninterrupted == [str(128 * k) for k in range(1, 9)]
    assert (out / "summary.md").is_file()  # the report covers what finished

    # Re-running resumes the killed run from its checkpoint; the finished one is left alone.
    before = mtimes(other)
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, stdout + err
    assert f"resumed  {victim.name}" in stdout and "1 run(s) already finished" in stdout
    assert [r["timesteps"] for r in eval_rows(victim)] == uninterrupted
    assert yaml.safe_load((victim / "status.yaml").read_text())["state"] == "finished"
    assert "# resumed" in (victim / "command.txt").read_text()
    assert mtimes(other) == before
    assert log.read_text().count("===== ") == 2  # both attempts, appended to one log


def test_failing_run_is_reported_with_its_log_and_the_others_finish(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "abl"
    argv = args_for(
        out,
        "--kl-weights",
        "1",
        "--grid",
        "projection_dim=16,17",
        "--extractor",
        "tests.test_ablate:CrashOnProjectionDim17",
        "--workers",
        "2",
        seeds=("0",),
    )
    code, stdout, err = run_main(argv, capsys)
    assert code == 1, stdout + err
    bad, good = "kl_weight=1.0__projection_dim=17__seed=0", "kl_weight=1.0__projection_dim=16__seed=0"
    log = out / "logs" / f"{bad}.log"
    assert f"failed: {bad}: exit code 1" in err and f"log: {log}" in err
    assert "deliberate crash for the ablation test" in log.read_text()
    assert yaml.safe_load((out / "runs" / bad / "status.yaml").read_text())["state"] == "failed"
    assert yaml.safe_load((out / "runs" / good / "status.yaml").read_text())["state"] == "finished"
    assert "1/2 runs finished" in stdout
    summary = (out / "summary.md").read_text()
    assert "projection_dim=16" in summary and bad in summary  # listed as skipped (no evaluations)


def test_run_without_checkpoint_starts_over_and_its_folder_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "abl"
    plan = _plan(out, "--kl-weights", "1", seeds=("0",))
    write_ablation_files(plan)
    cell = plan.cells[0]
    run_dir = out / "runs" / cell.cell.name
    (run_dir / "tb").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**cell.config, "meta": {"created": "before"}}))
    (run_dir / "status.yaml").write_text(
        yaml.safe_dump({"state": "running", "timesteps": 0, "total_timesteps": 256})
    )
    (run_dir / "evaluations.csv").write_text("timesteps,mean_reward,std_reward,episode_rewards\n")
    argv = args_for(out, "--kl-weights", "1", seeds=("0",))
    code, stdout, err = run_main([*argv, "--dry-run"], capsys)
    assert code == 0, err
    assert f"restart   {cell.cell.name}  (running, no live process before its first checkpoint" in stdout
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, stdout + err
    (kept,) = (out / "attic").iterdir()
    assert kept.name.startswith(cell.cell.name) and (kept / "tb").is_dir()
    assert [r["timesteps"] for r in eval_rows(run_dir)] == ["128", "256"]


def _ignore_sigint() -> None:
    # What a shell does to background jobs; ``kill -INT`` must still interrupt the ablation.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("inherit_ignored_sigint", [False, True], ids=["sigint", "sigint-ignored-by-parent"])
def test_ctrl_c_interrupts_the_runs_and_rerun_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], inherit_ignored_sigint: bool
) -> None:
    out = tmp_path / "abl"
    argv = args_for(out, "--kl-weights", "1", "--checkpoint-freq", "128", seeds=("0",), steps=1024)
    run_dir = out / "runs" / "kl_weight=1.0__seed=0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "relic_rl.ablate", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if inherit_ignored_sigint else None,
    )
    try:
        end = time.monotonic() + 120
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
    assert status["state"] == "interrupted" and 0 < status["timesteps"] < 1024, status
    assert "re-run the same command to resume" in stderr and "Traceback" not in stderr
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, stdout + err
    assert "resumed  kl_weight=1.0__seed=0" in stdout
    assert [r["timesteps"] for r in eval_rows(run_dir)] == [str(128 * k) for k in range(1, 9)]


def test_aux_none_alone_runs_a_baseline_only_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A hyperparameter search with the auxiliary loss off: no KL axis, only no-aux runs.
    out = tmp_path / "abl"
    code, stdout, err = run_main(
        args_for(out, "--aux", "none", "--grid", "gamma=0.9,0.99", "--workers", "2", seeds=("0",)), capsys
    )
    assert code == 0, stdout + err
    names = sorted(p.name for p in (out / "runs").iterdir())
    assert names == sorted(["baseline__gamma=0.9__seed=0", "baseline__gamma=0.99__seed=0"])
    for name in names:
        config = yaml.safe_load((out / "runs" / name / "config.yaml").read_text())
        assert config["agent"]["relic"]["enabled"] is False
    stored = yaml.safe_load((out / "ablation.yaml").read_text())
    assert stored["grid"] == {"gamma": [0.9, 0.99]} and stored["baseline"] is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--aux", "none", "--kl-weights", "1", "0"], "--kl-weights needs the ReLIC variants"),
        (["--aux", "none", "--grid", "temperature=0.1,0.5"], "cannot be axes of a grid without ReLIC"),
    ],
)
def test_aux_none_rejects_relic_axes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, _, err = run_main([*args_for(tmp_path / "abl", *extra), "--dry-run"], capsys)
    assert code == 2 and message in err


def test_expand_cells_without_relic_or_baseline_has_no_variants() -> None:
    with pytest.raises(GridError, match="neither ReLIC variants nor the baseline"):
        expand_cells({"gamma": [0.9]}, [0], baseline=False, relic=False)


def test_aux_curl_adds_curl_cells_over_the_axes_curl_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "abl"
    argv = args_for(out, "--aux", "relic", "curl", "--grid", "temperature=0.1,0.5", "--dry-run", seeds=("0",))
    code, stdout, err = run_main(argv, capsys)
    assert code == 0, stdout + err
    # CURL reads neither the KL weight nor the temperature: one CURL cell per seed.
    assert "curl__seed=0" in stdout and "variants (5):" in stdout
    assert "curl: yes" in stdout


def test_curl_cells_train_with_the_curl_objective(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "abl"
    code, stdout, err = run_main(args_for(out, "--aux", "curl", "none", seeds=("0",)), capsys)
    assert code == 0, stdout + err
    names = sorted(p.name for p in (out / "runs").iterdir())
    assert names == ["baseline__seed=0", "curl__seed=0"]
    config = yaml.safe_load((out / "runs" / "curl__seed=0" / "config.yaml").read_text())
    assert config["aux"] == "curl" and config["agent"]["relic"]["objective"] == "curl"
    stored = yaml.safe_load((out / "ablation.yaml").read_text())
    assert stored["curl"] is True and stored["grid"] == {}
    summary = (out / "summary.md").read_text()
    assert "| curl | 1 |" in summary and "## Against the no-aux baseline" in summary


def test_curl_without_relic_rejects_axes_curl_does_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*args_for(tmp_path / "abl", "--aux", "curl", "--grid", "temperature=0.1,0.5"), "--dry-run"]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and "temperature cannot be axes" in err and "CURL" in err


def test_an_ablation_without_curl_keeps_its_identity() -> None:
    # Folders written before CURL existed have no `curl` key: the same command must match them.
    cells = expand_cells({"kl_weight": [1.0, 0.0]}, [0], baseline=True)
    assert [c.aux for c in cells] == ["relic", "relic", "none"]
    with_curl = expand_cells({"kl_weight": [1.0, 0.0]}, [0], baseline=True, curl=True)
    assert [c.name for c in with_curl] == [
        "kl_weight=1.0__seed=0",
        "kl_weight=0.0__seed=0",
        "curl__seed=0",
        "baseline__seed=0",
    ]
    assert with_curl[2].params == {"aux": "curl"} and with_curl[2].variant == "curl"
    spec = AblationSpec("Env-v0", 100, (0,), {"kl_weight": [1.0, 0.0]}, True, ())
    assert "curl" not in spec.identity()
    assert dataclasses.replace(spec, curl=True).identity()["curl"] is True
