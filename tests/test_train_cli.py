"""``python -m relic_rl.train``: smoke runs, run folders, resume, Ctrl-C, NaN guard, error paths.

Smoke tests run the real entry point in a subprocess with tiny budgets on the fake pixel env
(``tests.fake_pixel_env:FakePixel-v0``, importable with the repository root on PYTHONPATH);
the many error paths call :func:`relic_rl.train.main` in-process, which is much faster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from stable_baselines3 import PPO

from relic_rl.callbacks import StopAfterSteps
from relic_rl.evaluate import evaluate_run
from relic_rl.experiment import train
from relic_rl.extractor import ReLICExtractor
from relic_rl.objectives import CURLObjective
from relic_rl.runs import (
    RunStatus,
    latest_checkpoint,
    list_checkpoints,
    read_evaluation_rows,
    read_status,
    write_run_files,
)
from relic_rl.train import build_parser, main, resolve_run_config
from tests.helpers import BOX2D_MODULES

REPO = Path(__file__).resolve().parents[1]
FAKE = "tests.fake_pixel_env:FakePixel-v0"
#: 256 steps in rollouts of 2 envs x 64 steps: two PPO updates, evaluations at 128 and 256.
TINY = [
    "--total-timesteps",
    "256",
    "--n-envs",
    "2",
    "--eval-freq",
    "128",
    "--eval-episodes",
    "2",
    "--checkpoint-freq",
    "128",
    "--no-progress",
    "--hyperparams",
    "n_steps=64",
    "batch_size=64",
    "n_epochs=1",
]


# ----------------------------------------------------------------------------- helpers
class SmallCriticExtractor(ReLICExtractor):
    """A user subclass (for --extractor): a linear critic instead of the MLP."""

    def build_critic(self, features_dim: int) -> torch.nn.Module:
        return torch.nn.Linear(features_dim, self.config.projection_dim)


class DivergingExtractor(ReLICExtractor):
    """Features turn NaN from the third training forward pass on: a diverging run (NaN guard test)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.training_calls = 0

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        features = super().forward(observations)
        if self.training and torch.is_grad_enabled():
            self.training_calls += 1
            if self.training_calls > 2:
                return features * float("nan")
        return features


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_cli(module: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def saved_config(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((run_dir / "config.yaml").read_text())
    return data


def eval_timesteps(path: Path) -> list[int]:
    return [int(row["timesteps"]) for row in read_evaluation_rows(path)]


def scalar_steps(tb_dir: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tb_dir))
    accumulator.Reload()
    return [event.step for event in accumulator.Scalars(tag)]


# ----------------------------------------------------------------------------- smoke runs
def test_train_subprocess_writes_a_complete_run_folder(tmp_path: Path) -> None:
    argv = ["--env", FAKE, *TINY, "--log-dir", str(tmp_path / "runs"), "--run-name", "r"]
    # Any working directory: the presets are found through the package.
    result = run_cli("relic_rl.train", *argv, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    run_dir = tmp_path / "runs" / "r"
    out = result.stdout
    assert "agent_preset: default" in out  # the resolved configuration is printed
    for line in ("relic-rl training", "algo        ppo", "device      cpu", f"run folder  {run_dir}"):
        assert line in out
    assert f"tensorboard --logdir {run_dir}" in out

    # config.yaml: the resolved configuration (what resolve_run_config gives) plus meta.
    config = saved_config(run_dir)
    meta = config.pop("meta")
    assert config == resolve_run_config(argv).to_dict()
    assert {"created", "run_dir", "command", "hostname", "versions", "device"} <= set(meta)
    assert config["agent"]["n_steps"] == 64 and config["total_timesteps"] == 256
    command = (run_dir / "command.txt").read_text()
    assert command.startswith("python -m relic_rl.train --env tests.fake_pixel_env:FakePixel-v0")
    assert "--run-name r" in command

    assert read_status(run_dir) == RunStatus("finished", 256, 256, None)
    assert (run_dir / "final_model.zip").is_file()
    assert [c.timesteps for c in list_checkpoints(run_dir)] == [128]
    assert sorted(p.name for p in (run_dir / "monitor").iterdir()) == ["0.monitor.csv", "1.monitor.csv"]
    header = (run_dir / "evaluations.csv").read_text().splitlines()[0]
    assert header == "timesteps,mean_reward,std_reward,episode_rewards"
    rows = read_evaluation_rows(run_dir / "evaluations.csv")
    assert [int(r["timesteps"]) for r in rows] == [128, 256]
    assert all(len(r["episode_rewards"].split()) == 2 for r in rows)
    tb = run_dir / "tb"
    assert any(p.name.startswith("events.out.tfevents") for p in tb.iterdir())
    assert scalar_steps(tb, "eval/mean_reward") == [128, 256]
    assert scalar_steps(tb, "relic/loss")
    progress_header = (tb / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "relic/loss", "relic/accuracy", "eval/mean_reward"} <= set(progress_header)
    assert not list(run_dir.rglob("*.tmp"))


@pytest.mark.carracing
def test_carracing_v2_trains_and_evaluates(tmp_path: Path) -> None:
    # max_episode_steps=100 env steps (50 agent steps with frame skip 2) keeps evaluation short.
    argv = [
        "--env",
        "CarRacing-v2",
        "--total-timesteps",
        "256",
        "--n-envs",
        "2",
        "--eval-episodes",
        "1",
        "--env-kwargs",
        "max_episode_steps=100",
        "--eval-domain-randomize",
        "--no-progress",
        "--log-dir",
        str(tmp_path),
        "--run-name",
        "car",
        "--hyperparams",
        "n_steps=64",
        "batch_size=64",
        "n_epochs=1",
    ]
    result = run_cli("relic_rl.train", *argv, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("using CarRacing-v3 with v2's termination semantics") == 1
    assert "family carracing: frame skip 4, 64x64, gray, stack 2" in result.stdout
    run_dir = tmp_path / "car"
    config = saved_config(run_dir)
    assert config["agent_preset"] == "CarRacing-v2"
    assert config["agent"]["normalize"] == {
        "norm_obs": False,
        "norm_reward": True,
        "clip_obs": 10.0,
        "clip_reward": 10.0,
    }
    assert config["meta"]["env_note"].startswith("CarRacing-v2 is not registered")
    assert read_status(run_dir).state == "finished"
    assert (run_dir / "vecnormalize.pkl").is_file()
    assert eval_timesteps(run_dir / "evaluations.csv") == [256]
    assert eval_timesteps(run_dir / "evaluations_randomized.csv") == [256]
    assert scalar_steps(run_dir / "tb", "eval_randomized/mean_reward") == [256]
    # The env is rebuilt from config.yaml (carracing preset, env_kwargs, VecNormalize statistics).
    evaluated = evaluate_run(run_dir, episodes=1, domain_randomize=True)
    assert len(evaluated.returns) == 1 and evaluated.lengths == [100]  # Monitor: raw env steps


def test_aux_none_is_the_same_pipeline_without_the_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(
        ["--env", FAKE, *TINY, "--aux", "none", "--quiet", "--log-dir", str(tmp_path)], capsys
    )
    assert code == 0, err
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.startswith("FakePixel-v0__ppo-none__seed0__")
    config = saved_config(run_dir)
    assert config["aux"] == "none" and config["agent"]["relic"]["enabled"] is False
    model = PPO.load(run_dir / "final_model.zip")
    extractor = model.policy.features_extractor
    assert isinstance(extractor, ReLICExtractor) and extractor.critic is None
    header = (run_dir / "tb" / "progress.csv").read_text().splitlines()[0]
    assert "relic/loss" not in header and "train/loss" in header


def test_dqn_with_discrete_env_kwargs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "--env",
        FAKE,
        "--algo",
        "dqn",
        "--env-kwargs",
        "continuous=False",
        "--total-timesteps",
        "192",
        "--n-envs",
        "1",
        "--eval-freq",
        "192",
        "--eval-episodes",
        "1",
        "--quiet",
        "--no-progress",
        "--log-dir",
        str(tmp_path),
        "--run-name",
        "dqn",
        "--hyperparams",
        "buffer_size=500",
        "learning_starts=64",
        "target_update_interval=64",
        "batch_size=16",
    ]
    code, _, err = run_main(args, capsys)
    assert code == 0, err
    config = saved_config(tmp_path / "dqn")
    assert config["algo"] == "dqn" and config["agent"]["env_kwargs"] == {"continuous": False}
    assert config["agent"]["buffer_size"] == 500
    assert eval_timesteps(tmp_path / "dqn" / "evaluations.csv") == [192]


def test_extractor_subclass_by_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = "tests.test_train_cli:SmallCriticExtractor"
    args = [
        "--env",
        FAKE,
        *TINY,
        "--extractor",
        spec,
        "--quiet",
        "--log-dir",
        str(tmp_path),
        "--run-name",
        "x",
    ]
    code, _, err = run_main(args, capsys)
    assert code == 0, err
    assert saved_config(tmp_path / "x")["extractor"] == spec
    model = PPO.load(tmp_path / "x" / "final_model.zip")
    extractor = model.policy.features_extractor
    assert type(extractor).__name__ == "SmallCriticExtractor"
    assert isinstance(extractor.critic, torch.nn.Linear)


def test_progress_bar_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "--env",
        FAKE,
        *[a for a in TINY if a != "--no-progress"],
        "--log-dir",
        str(tmp_path),
        "--run-name",
        "p",
    ]
    code, out, err = run_main(args, capsys)
    assert code == 0, err
    assert "steps/s" in out and "256/256" in out


# ----------------------------------------------------------------------------- resume
RESUME_ARGS = [
    "--env",
    FAKE,
    "--total-timesteps",
    "512",
    "--n-envs",
    "2",
    "--eval-freq",
    "96",
    "--eval-episodes",
    "1",
    "--checkpoint-freq",
    "128",
    "--hyperparams",
    "n_steps=64",
    "batch_size=64",
    "n_epochs=1",
    "normalize=true",
]


def test_interrupted_run_resumes_with_continuous_counter_and_evaluations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = resolve_run_config(RESUME_ARGS)
    straight = tmp_path / "straight"
    assert train(config, straight, progress=False, quiet=True).state == "finished"

    run_dir = tmp_path / "interrupted"
    # Ctrl-C at step 300, in the middle of the rollout that started at 256.
    result = train(config, run_dir, progress=False, quiet=True, callbacks=[StopAfterSteps(300)])
    assert result.state == "interrupted" and result.exit_code == 130
    # The checkpoint is labelled with the rollout's start (the policy did not change since).
    assert result.timesteps == 256
    status = read_status(run_dir)
    assert (status.state, status.timesteps, status.total_timesteps) == ("interrupted", 256, 512)
    assert "checkpoint" in (status.message or "")
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint is not None and checkpoint.timesteps == 256 and checkpoint.vecnormalize is not None
    assert eval_timesteps(run_dir / "evaluations.csv") == [96, 192, 288]
    assert "resume with: python -m relic_rl.train --resume" in capsys.readouterr().out
    assert resolve_run_config(["--resume", str(run_dir)]) == config

    code, out, err = run_main(["--resume", str(run_dir), "--no-progress"], capsys)
    assert code == 0, err
    assert "resuming at step 256" in out
    assert read_status(run_dir) == RunStatus("finished", 512, 512, None)
    # Same evaluation rows as the uninterrupted run (the one at 288 was redone, not duplicated).
    expected = eval_timesteps(straight / "evaluations.csv")
    assert expected == [96, 192, 288, 384, 480, 512]
    assert eval_timesteps(run_dir / "evaluations.csv") == expected
    # The timestep counter continued, and TensorBoard shows one continuous run.
    resumed = (run_dir / "tb" / "progress-resume-1.csv").read_text().splitlines()
    column = resumed[0].split(",").index("time/total_timesteps")
    counters = [int(float(line.split(",")[column])) for line in resumed[1:] if line.split(",")[column]]
    assert counters and min(counters) > 256 and max(counters) == 512
    assert scalar_steps(run_dir / "tb", "eval/mean_reward") == expected
    assert PPO.load(run_dir / "final_model.zip").num_timesteps == 512
    assert (run_dir / "monitor" / "resume-1" / "0.monitor.csv").is_file()
    assert "# resumed" in (run_dir / "command.txt").read_text()

    # Resuming a finished run does nothing.
    code, out, _ = run_main(["--resume", str(run_dir)], capsys)
    assert code == 0 and "already finished" in out


def test_resume_without_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = resolve_run_config(["--env", FAKE, *TINY])
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    write_run_files(fresh, config, {}, "python -m relic_rl.train ...")
    # Only the startup files: the run starts over in the same folder.
    code, _, err = run_main(["--resume", str(fresh), "--quiet", "--no-progress"], capsys)
    assert code == 0, err
    assert read_status(fresh).state == "finished"

    partial = tmp_path / "partial"
    partial.mkdir()
    write_run_files(partial, config, {}, "python -m relic_rl.train ...")
    (partial / "monitor").mkdir()
    code, _, err = run_main(["--resume", str(partial)], capsys)
    assert code == 2
    assert "has no checkpoint to resume from" in err and "monitor" in err


def _ignore_sigint() -> None:
    # What a shell does to background jobs; train must still stop cleanly on SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("sig", "inherit_ignored_sigint"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["sigint", "sigint-ignored-by-parent", "sigterm"],
)
def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(
    tmp_path: Path, sig: signal.Signals, inherit_ignored_sigint: bool
) -> None:
    run_dir = tmp_path / "sig"
    args = ["--env", FAKE, *TINY, "--log-dir", str(tmp_path), "--run-name", "sig"]
    args[args.index("--total-timesteps") + 1] = "1000000"
    process = subprocess.Popen(
        [sys.executable, "-m", "relic_rl.train", *args],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if inherit_ignored_sigint else None,
    )
    try:
        deadline = time.monotonic() + 120
        while latest_checkpoint(run_dir) is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert latest_checkpoint(run_dir) is not None, "no checkpoint appeared"
        process.send_signal(sig)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out + err
    assert f"resume with: python -m relic_rl.train --resume {run_dir}" in out
    assert "Traceback" not in err
    status = read_status(run_dir)
    assert status.state == "interrupted"
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint is not None and checkpoint.timesteps == status.timesteps
    assert not (run_dir / "final_model.zip").exists()


# ----------------------------------------------------------------------------- NaN guard
def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "--env",
        FAKE,
        *TINY,
        "--extractor",
        "tests.test_train_cli:DivergingExtractor",
        "--quiet",
        "--log-dir",
        str(tmp_path),
        "--run-name",
        "nan",
    ]
    args[args.index("--total-timesteps") + 1] = "512"
    code, _, err = run_main(args, capsys)
    assert code == 1
    # The NaN features reach torch.distributions inside the second update (at step 256).
    assert err.startswith("error: Training diverged at step 256: non-finite values in the policy's outputs")
    assert "found invalid values" in err and err.count("\n") == 1
    assert "Last metrics: relic/" in err and "train/loss=" in err  # those of the last good update
    assert "The last good checkpoint is" in err and "model_128_steps.zip" in err
    run_dir = tmp_path / "nan"
    status = read_status(run_dir)
    assert status.state == "failed" and status.timesteps == 128 and "diverged" in (status.message or "")
    assert [c.timesteps for c in list_checkpoints(run_dir)] == [128]
    assert not (run_dir / "final_model.zip").exists()
    good = PPO.load(run_dir / "checkpoints" / "model_128_steps.zip")
    assert all(torch.isfinite(p).all() for p in good.policy.parameters())


def test_guard_stops_on_non_finite_logged_values_and_parameters() -> None:
    from stable_baselines3.common.logger import configure

    from relic_rl.callbacks import NonFiniteError, NonFiniteGuard
    from tests.helpers import image_vec_env

    model = PPO("CnnPolicy", image_vec_env(n_envs=1), n_steps=8, batch_size=8, device="cpu")
    model.set_logger(configure(None, []))
    guard = NonFiniteGuard()
    guard.init_callback(model)
    model.logger.record("train/loss", 0.5)
    model.logger.record("rollout/ep_rew_mean", float("nan"))  # not guarded
    guard.check()
    assert guard.last_metrics == {"train/loss": 0.5}
    model.logger.record("relic/loss", float("inf"))
    with pytest.raises(NonFiniteError, match=r"step 0: non-finite values relic/loss=inf.*train/loss=0.5"):
        guard.check()
    model.logger.dump(0)
    with torch.no_grad():
        next(model.policy.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteError, match=r"non-finite policy parameters \(log_std\)"):
        guard.check()


# ----------------------------------------------------------------------------- errors
def _no_box2d(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name.startswith(BOX2D_MODULES):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "Box2D", None)


ERROR_CASES: list[tuple[str, list[str], list[str]]] = [
    (
        "unknown env",
        ["--env", "CarRacin-v2"],
        ["Unknown environment id 'CarRacin-v2'", "Did you mean", "CarRacing"],
    ),
    (
        "non-image",
        ["--env", "tests.fake_pixel_env:FakeVectorObs-v0"],
        ["Box(float32, shape=(8,)", "ReLIC learns from pixels"],
    ),
    ("unknown algo", ["--env", FAKE, "--algo", "ddpg"], ["invalid choice: 'ddpg'", "--help"]),
    (
        "dqn continuous",
        ["--env", FAKE, "--algo", "dqn"],
        [
            "dqn needs a discrete action space",
            "Box(-1.0, 1.0, (2,)",
            "--algo ppo, a2c, sac, td3, tqc or ppo_lstm",
        ],
    ),
    (
        "sac discrete",
        ["--env", FAKE, "--algo", "sac", "--env-kwargs", "continuous=False"],
        ["sac needs a continuous (Box) action space", "Discrete(2)"],
    ),
    (
        "unknown hyperparam",
        ["--env", FAKE, "--hyperparams", "n_step=64"],
        ["--hyperparams: unknown key 'n_step' for ppo. Valid keys:", "n_steps", "relic"],
    ),
    (
        "bad hyperparam value",
        ["--env", FAKE, "--hyperparams", "n_steps=many"],
        ["agent.n_steps: expected an integer, got 'many'", "over agents/ppo.yaml [default]"],
    ),
    ("bad yaml", ["--env", FAKE, "--hyperparams", "policy_kwargs.net_arch=[64,"], ["is not valid YAML"]),
    (
        "sb3 rejects value",
        ["--env", FAKE, "--n-envs", "1", "--hyperparams", "batch_size=1"],
        ["Cannot build the ppo model", "`batch_size` must be greater than 1"],
    ),
    (
        "bad augmentation",
        ["--env", FAKE, "--augmentation", "blur"],
        ["unknown augmentation 'blur'", "set by --hyperparams or a flag"],
    ),
    ("bad flag value", ["--env", FAKE, "--n-envs", "0"], ["argument --n-envs: expected an integer >= 1"]),
    ("no env", [], ["--env ENV_ID is required"]),
    (
        "bad env kwarg",
        ["--env", FAKE, "--env-kwargs", "colour=3"],
        ["does not accept the keyword argument 'colour'"],
    ),
    ("extractor format", ["--env", FAKE, "--extractor", "MyExtractor"], ["--extractor expects module:Class"]),
    (
        "extractor import",
        ["--env", FAKE, "--extractor", "no_such_module:X"],
        ["cannot import the module 'no_such_module'", "PYTHONPATH"],
    ),
    ("extractor attribute", ["--env", FAKE, "--extractor", "relic_rl:Nope"], ["has no attribute 'Nope'"]),
    (
        "extractor class",
        ["--env", FAKE, "--extractor", "relic_rl:ReLICConfig"],
        ["is not a subclass of relic_rl.ReLICExtractor"],
    ),
    (
        "randomize unsupported",
        ["--env", FAKE, "--eval-domain-randomize"],
        ["--eval-domain-randomize needs an env that accepts domain_randomize=True"],
    ),
    ("resume not a run", ["--resume", "."], ["is not a relic-rl run folder: it has no config.yaml"]),
    ("resume with flags", ["--resume", ".", "--seed", "1"], ["cannot be combined with --seed"]),
]


@pytest.mark.parametrize(("name", "args", "fragments"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_user_errors_are_one_paragraph_and_exit_2(
    name: str, args: list[str], fragments: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "--resume" not in args:
        args = [*args, "--log-dir", str(tmp_path / "runs")]
    code, _, err = run_main(args, capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.carracing
def test_dqn_on_continuous_carracing_suggests_continuous_false(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(["--env", "CarRacing-v2", "--algo", "dqn", "--log-dir", str(tmp_path)], capsys)
    assert code == 2
    assert "--env-kwargs continuous=False" in err


def test_missing_box2d_is_one_paragraph(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_box2d(monkeypatch)
    code, _, err = run_main(["--env", "CarRacing-v2"], capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert 'pip install "relic-rl[box2d]"' in err


def test_missing_ale_py(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ale_py", None)
    code, _, err = run_main(["--env", "ALE/Pong-v5"], capsys)
    assert code == 2
    assert 'pip install "relic-rl[atari]"' in err


def test_existing_run_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("keep me")
    code, _, err = run_main(["--env", FAKE, *TINY, "--log-dir", str(tmp_path), "--run-name", "r"], capsys)
    assert code == 2
    assert "already exists and is not empty" in err and "--resume" in err
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["notes.txt"]


def test_help_documents_every_flag_with_its_default() -> None:
    parser = build_parser()
    text = parser.format_help()
    flags = [
        "--env",
        "--algo",
        "--aux",
        "--kl-weight",
        "--aux-weight",
        "--temperature",
        "--augmentation",
        "--seed",
        "--total-timesteps",
        "--n-envs",
        "--vec-env",
        "--device",
        "--log-dir",
        "--run-name",
        "--eval-freq",
        "--eval-episodes",
        "--eval-domain-randomize",
        "--checkpoint-freq",
        "--resume",
        "--extractor",
        "--hyperparams",
        "--env-kwargs",
        "--no-progress",
        "--quiet",
    ]
    for flag in flags:
        assert flag in text
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "env"):
            assert action.help and "default" in action.help, action.option_strings
    # --eval-freq counts env steps over all envs together; say so.
    assert "counted over all training envs together" in " ".join(text.split())


def test_resolve_run_config_defaults_and_overrides() -> None:
    config = resolve_run_config(["--env", "CarRacing-v2"])
    assert (config.algo, config.aux, config.seed, config.vec_env, config.device) == (
        "ppo",
        "relic",
        0,
        "dummy",
        "auto",
    )
    assert config.total_timesteps == 500_000 and config.n_envs == 8
    assert config.env_preset.frame_skip == 4  # the budget preset: 2M env frames
    assert config.env_preset.family == "carracing" and config.env_preset.frame_stack == 2
    tuned = resolve_run_config(
        [
            "--env",
            "CarRacing-v2",
            "--kl-weight",
            "0",
            "--aux-weight",
            "0.5",
            "--temperature",
            "0.2",
            "--augmentation",
            "crop(60)",
            "--seed",
            "3",
            "--hyperparams",
            "frame_stack=4",
            "frame_skip=3",
            "relic.n_views=3",
            "--env-kwargs",
            "domain_randomize=True",
        ]
    )
    relic = tuned.agent.relic
    assert (relic.kl_weight, relic.aux_weight, relic.temperature, relic.n_views) == (0.0, 0.5, 0.2, 3)
    assert relic.augmentation == "crop(60)" and tuned.seed == 3
    assert tuned.env_preset.frame_stack == 4 and tuned.agent.env_kwargs == {"domain_randomize": True}
    assert tuned.env_preset.frame_skip == 3 and config.env_preset.frame_skip == 4
    baseline = resolve_run_config(["--env", "CarRacing-v2", "--aux", "none"])
    assert baseline.aux == "none" and baseline.agent.relic.enabled is False
    # Everything but relic.enabled is identical, so the baseline differs from ReLIC in the loss only.
    assert baseline.agent.relic.replace(enabled=True) == config.agent.relic


def test_aux_curl_trains_the_curl_objective(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["--env", FAKE, *TINY, "--aux", "curl", "--log-dir", str(tmp_path)], capsys)
    assert code == 0, err
    assert "aux         curl (aux_weight=0.1" in out
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name.startswith("FakePixel-v0__ppo-curl__seed0__")
    config = saved_config(run_dir)
    assert config["aux"] == "curl"
    assert config["agent"]["relic"]["enabled"] is True and config["agent"]["relic"]["objective"] == "curl"
    model = PPO.load(run_dir / "final_model.zip")
    assert isinstance(model.policy.features_extractor.objective, CURLObjective)
    header = (run_dir / "tb" / "progress.csv").read_text().splitlines()[0].split(",")
    assert "relic/contrastive" in header and "relic/invariance" not in header
    # evaluate rebuilds the model, CURL's W included, from the run folder.
    assert len(evaluate_run(run_dir, episodes=1).returns) == 1


@pytest.mark.parametrize("flag", [["--temperature", "0.5"], ["--kl-weight", "0"]])
def test_aux_curl_refuses_relic_only_flags(flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["--env", FAKE, *TINY, "--aux", "curl", *flag], capsys)
    assert code == 2
    assert f"{flag[0]} does not apply to --aux curl" in err and "use --aux relic" in err
    assert "Traceback" not in err


def test_preset_selects_an_agent_block_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    # The rl-zoo3 CarRacing values stay selectable by name, for any env id.
    named = resolve_run_config(["--env", FAKE, "--preset", "CarRacing-v2-rl-zoo3"])
    assert named.agent_preset == "CarRacing-v2-rl-zoo3"
    assert named.agent.hyperparam("n_epochs") == 10 and named.agent.hyperparam("use_sde") is True
    assert resolve_run_config(["--env", FAKE]).agent_preset == "default"
    code, _, err = run_main(["--env", FAKE, "--preset", "CarRacing-v2-zoo3"], capsys)
    assert code == 2 and "has no preset 'CarRacing-v2-zoo3'" in err
    assert "Did you mean 'CarRacing-v2-rl-zoo3'?" in err and "Traceback" not in err


def test_preset_cannot_change_a_resumed_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["--resume", str(tmp_path), "--preset", "default"], capsys)
    assert code == 2 and "--preset" in err


def test_the_flag_table_matches_the_parser_and_each_preset_flag_sets_its_key() -> None:
    from relic_rl.flags import PRESET_FLAGS, RUN_FLAGS, option

    dests = {action.dest: action.option_strings for action in build_parser()._actions}
    for dest in RUN_FLAGS:
        assert option(dest) in dests[dest], dest
    values = {
        "total_timesteps": 4096,
        "n_envs": 2,
        "eval_freq": 333,
        "eval_episodes": 3,
        "checkpoint_freq": 777,
        "kl_weight": 0.25,
        "aux_weight": 0.5,
        "temperature": 0.3,
        "augmentation": "intensity",
    }
    assert set(values) == set(PRESET_FLAGS)
    argv = ["--env", FAKE, *[token for dest, v in values.items() for token in (option(dest), str(v))]]
    agent = resolve_run_config(argv).agent.to_dict()
    for dest, path in PRESET_FLAGS.items():
        value: Any = agent
        for key in path:
            value = value[key]
        assert value == values[dest], dest


def test_a_run_is_built_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import relic_rl.experiment as experiment

    built: list[int] = []
    real_build = experiment.build_model

    def counting_build(*args: Any, **kwargs: Any) -> Any:
        built.append(1)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(experiment, "build_model", counting_build)
    code, out, _ = run_main(["--env", FAKE, *TINY, "--log-dir", str(tmp_path)], capsys)
    assert code == 0
    assert len(built) == 1
    # The start summary comes once the run is built, before training.
    assert out.index("config:") < out.index("finished")


def test_bad_hyperparameter_found_while_building_leaves_no_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # batch_size=1 passes the preset checks; SB3 refuses it only when the model is made.
    log_dir = tmp_path / "new"
    args = [*TINY[: TINY.index("batch_size=64")], "batch_size=1", "n_epochs=1"]
    code, out, err = run_main(["--env", FAKE, *args, "--log-dir", str(log_dir), "--run-name", "r"], capsys)
    assert code == 2, err
    assert "Cannot build the ppo model" in err and "config:" not in out
    assert not log_dir.exists()


def test_train_cli_module_exports_the_command_line_only() -> None:
    import relic_rl.experiment as experiment
    import relic_rl.train as cli

    assert {"main", "build_parser", "resolve_run_config"} <= set(cli.__all__)
    assert not {"train", "resume", "make_env", "build_model", "preflight"} & set(cli.__all__)
    # The moved names still resolve, to the library's objects, with a warning naming their home.
    with pytest.warns(DeprecationWarning, match=r"relic_rl\.experiment\.make_env"):
        assert cli.make_env is experiment.make_env
    with pytest.raises(AttributeError):
        cli.no_such_name  # noqa: B018
