"""sb3-contrib: the ReLIC classes of QR-DQN, TQC, TRPO, MaskablePPO and RecurrentPPO, their
updates (RecurrentPPO's padded rows and TRPO's natural-gradient step stay out of the auxiliary
loss) and ``--algo qrdqn|tqc|ppo_lstm`` through train, evaluate and ablate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("sb3_contrib")

from sb3_contrib import QRDQN, TQC, TRPO, MaskablePPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecTransposeImage

from relic_rl import ReLICConfig, ReLICExtractor, ablate, evaluate, train
from relic_rl.algorithms import ALGORITHMS, relic_extractors
from relic_rl.contrib import (
    ReLICMaskablePPO,
    ReLICQRDQN,
    ReLICRecurrentPPO,
    ReLICTQC,
    ReLICTRPO,
)
from tests.fake_pixel_env import FakePixelEnv
from tests.helpers import aux_batch_sizes, image_vec_env, metric_totals

FAKE = "tests.fake_pixel_env:FakePixel-v0"


def _model(**kwargs: Any) -> ReLICRecurrentPPO:
    # Episodes of 7 steps in rollouts of 16: sequences of several lengths, so minibatches pad.
    return ReLICRecurrentPPO(
        "CnnLstmPolicy",
        image_vec_env(n_envs=2, continuous=True, episode_length=7),
        n_steps=16,
        batch_size=16,
        n_epochs=2,
        seed=0,
        device="cpu",
        **kwargs,
    )


def test_padded_rows_never_enter_the_auxiliary_loss() -> None:
    model = _model(relic=ReLICConfig(augmentation="identity"))
    (extractor,) = {id(e): e for e in model.policy.modules() if isinstance(e, ReLICExtractor)}.values()
    seen: list[tuple[int, int, int]] = []  # (aux rows, real rows, all rows) per aux loss
    original = extractor.aux_loss

    def recording(online: torch.Tensor, target: torch.Tensor) -> Any:
        rows = extractor.aux_rows
        assert rows is not None, "the minibatch mask reaches the extractor"
        seen.append((online.shape[1], int(rows.sum()), rows.numel()))
        return original(online, target)

    extractor.aux_loss = recording  # type: ignore[method-assign]
    model.learn(64)
    assert seen, "the auxiliary loss ran"
    assert all(aux == real for aux, real, _ in seen)
    assert any(real < total for _, real, total in seen), "some minibatch was padded"
    assert extractor.aux_rows is None  # cleared after training
    assert "get" not in vars(model.rollout_buffer)  # the buffer is left as it was


def test_aux_rows_select_the_rows_of_the_auxiliary_loss() -> None:
    # Without aux_rows every row of the batch enters it; with them, only the marked ones.
    model = _model()
    (extractor,) = {id(e): e for e in model.policy.modules() if isinstance(e, ReLICExtractor)}.values()
    obs = torch.rand(6, *model.observation_space.shape)
    extractor.train()
    sizes = aux_batch_sizes(extractor)
    extractor(obs)
    extractor.aux_rows = torch.tensor([True, False, True, True, False, False])
    extractor(obs)
    extractor.aux_rows = None
    assert sizes == [6, 3]


def test_relic_is_only_for_the_image_policies() -> None:
    with pytest.raises(ValueError, match="'CnnLstmPolicy' or 'MultiInputLstmPolicy'"):
        ReLICRecurrentPPO("MlpLstmPolicy", image_vec_env(n_envs=1), relic=ReLICConfig())


# ----------------------------------------------------------------------------- every class
class _MaskedFakePixelEnv(FakePixelEnv):
    """FakePixelEnv with MaskablePPO's ``action_masks()`` (every action allowed)."""

    def action_masks(self) -> np.ndarray:
        return np.ones(self.action_space.n, dtype=bool)  # type: ignore[attr-defined]


def _masked_env() -> VecTransposeImage:
    return VecTransposeImage(DummyVecEnv([lambda: _MaskedFakePixelEnv(continuous=False)]))


OFF_POLICY_KWARGS = {"learning_starts": 16, "buffer_size": 200, "batch_size": 8}
CLASSES: list[tuple[type[BaseAlgorithm], type[BaseAlgorithm], str, dict[str, Any]]] = [
    (ReLICQRDQN, QRDQN, "discrete", {**OFF_POLICY_KWARGS, "train_freq": 1}),
    (ReLICTQC, TQC, "box", OFF_POLICY_KWARGS),
    (ReLICTRPO, TRPO, "discrete", {"n_steps": 32, "batch_size": 16, "n_critic_updates": 2}),
    (ReLICMaskablePPO, MaskablePPO, "masked", {"n_steps": 32, "batch_size": 16, "n_epochs": 1}),
]


@pytest.mark.parametrize(
    ("cls", "parent", "env_kind", "kwargs"), CLASSES, ids=lambda v: getattr(v, "__name__", "")
)
def test_each_contrib_class_trains_its_encoder_with_the_auxiliary_loss(
    cls: type[BaseAlgorithm], parent: type[BaseAlgorithm], env_kind: str, kwargs: dict[str, Any]
) -> None:
    env = _masked_env() if env_kind == "masked" else image_vec_env(continuous=env_kind == "box")
    model = cls("CnnPolicy", env, seed=0, device="cpu", relic=ReLICConfig(aux_weight=0.5), **kwargs)
    assert isinstance(model, parent)
    active = [e for e in relic_extractors(model.policy).values() if e.aux_enabled]
    assert active, "an extractor with the auxiliary loss"
    critics = {id(e): [p.detach().clone() for p in e.critic.parameters()] for e in active}
    totals = [metric_totals(e) for e in active]
    model.learn(64)
    assert sum(t["aux_updates"] for t in totals) > 0
    assert sum(t["ema_updates"] for t in totals) > 0
    # The projection g is trained by nothing but the auxiliary loss.
    for extractor in active:
        before = critics[id(extractor)]
        assert any(not torch.equal(b, p) for b, p in zip(before, extractor.critic.parameters(), strict=True))
    assert any(key.startswith("relic/") for key in model.logger.name_to_value)


def test_qrdqn_keeps_sb3s_nature_cnn_head() -> None:
    # QR-DQN, like DQN, has no MLP between NatureCNN and its quantile head.
    model = ReLICQRDQN("CnnPolicy", image_vec_env(continuous=False), device="cpu", **OFF_POLICY_KWARGS)
    plain = QRDQN("CnnPolicy", image_vec_env(continuous=False), device="cpu", **OFF_POLICY_KWARGS)
    shapes = [p.shape for p in model.policy.quantile_net.quantile_net.parameters()]
    assert shapes == [p.shape for p in plain.policy.quantile_net.quantile_net.parameters()]


# ----------------------------------------------------------------------------- TRPO
def _trpo(**kwargs: Any) -> ReLICTRPO:
    return ReLICTRPO(
        "CnnPolicy",
        image_vec_env(continuous=False),
        n_steps=32,
        batch_size=16,
        n_critic_updates=2,
        seed=0,
        device="cpu",
        **kwargs,
    )


def test_trpo_natural_gradient_step_is_the_same_with_and_without_the_auxiliary_loss() -> None:
    model = _trpo(relic=ReLICConfig(aux_weight=5.0))
    policy = model.policy
    assert policy.pi_features_extractor is not policy.vf_features_extractor
    assert not policy.pi_features_extractor.aux_enabled and policy.vf_features_extractor.aux_enabled
    model.learn(32)  # one rollout, one update
    # The same seed (built after the first one learned: construction reseeds the global RNGs),
    # the value encoder's auxiliary loss off: the same rollout, then one update.
    without = _trpo(relic=ReLICConfig(aux_weight=5.0))
    without.policy.vf_features_extractor.aux_enabled = False
    without.learn(32)
    values = ("vf_features_extractor.", "value_net.", "mlp_extractor.value_net.")
    trained, plain = model.policy.state_dict(), without.policy.state_dict()
    policy_side = [k for k in trained if not k.startswith(values)]
    assert policy_side and all(torch.equal(trained[k], plain[k]) for k in policy_side)
    value_encoder = [k for k in trained if k.startswith("vf_features_extractor.encoder.")]
    assert any(not torch.equal(trained[k], plain[k]) for k in value_encoder), "aux trains the value encoder"
    assert all(torch.isfinite(v).all() for v in trained.values() if v.is_floating_point())


def test_trpo_refuses_a_shared_encoder_and_says_why() -> None:
    with pytest.raises(ValueError, match=r"share_features_extractor=False.*natural-gradient.*ReLICPPO"):
        _trpo(policy_kwargs={"share_features_extractor": True})


# ----------------------------------------------------------------------------- the CLIs
CLI_CASES = {
    "qrdqn": (
        ReLICQRDQN,
        [
            "--env-kwargs",
            "continuous=False",
            "--hyperparams",
            "buffer_size=300",
            "learning_starts=32",
            "batch_size=8",
        ],
    ),
    "tqc": (ReLICTQC, ["--hyperparams", "buffer_size=300", "learning_starts=32", "batch_size=8"]),
    "ppo_lstm": (
        ReLICRecurrentPPO,
        ["--n-envs", "2", "--hyperparams", "n_steps=32", "batch_size=32", "n_epochs=1"],
    ),
}


@pytest.mark.parametrize("algo", list(CLI_CASES))
def test_contrib_algo_trains_and_evaluates_through_the_clis(
    algo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cls, extra = CLI_CASES[algo]
    assert ALGORITHMS[algo] is cls
    args = [
        "--env",
        FAKE,
        "--algo",
        algo,
        "--total-timesteps",
        "128",
        "--eval-freq",
        "128",
        "--eval-episodes",
        "1",
        "--quiet",
        "--no-progress",
        "--log-dir",
        str(tmp_path),
        "--run-name",
        algo,
        *extra,
    ]
    assert train.main(args) == 0, capsys.readouterr().err
    run_dir = tmp_path / algo
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["algo"] == algo
    assert config["agent"]["policy"] == ("CnnLstmPolicy" if algo == "ppo_lstm" else "CnnPolicy")
    model = cls.load(run_dir / "final_model.zip", device="cpu")
    assert isinstance(model, cls)
    if algo == "tqc":
        assert model.policy.encoder_mode == "critic"
    header = (run_dir / "tb" / "progress.csv").read_text().splitlines()[0]
    assert "relic/loss" in header
    capsys.readouterr()
    assert evaluate.main([str(run_dir), "--episodes", "2"]) == 0, capsys.readouterr().err
    video = tmp_path / f"{algo}.gif"
    assert evaluate.main([str(run_dir), "--episodes", "1", "--video", str(video)]) == 0
    assert video.stat().st_size > 0


def test_ablate_runs_a_contrib_algo_in_each_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    argv = [
        "--env",
        FAKE,
        "--seeds",
        "0",
        "--total-timesteps",
        "96",
        "--out",
        str(out),
        "--workers",
        "1",
        "--algo",
        "qrdqn",
        "--env-kwargs",
        "continuous=False",
        "--eval-freq",
        "96",
        "--eval-episodes",
        "1",
        "--hyperparams",
        "learning_starts=32",
        "buffer_size=200",
        "batch_size=8",
    ]
    assert ablate.main(argv) == 0, capsys.readouterr().err
    run_dirs = [p for p in (out / "runs").iterdir() if p.is_dir()]
    assert len(run_dirs) == 2  # KL on and off
    for run_dir in run_dirs:
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["algo"] == "qrdqn"
        assert isinstance(ReLICQRDQN.load(run_dir / "final_model.zip", device="cpu"), ReLICQRDQN)


def test_contrib_presets_start_from_rl_zoo3() -> None:
    from relic_rl.agent_config import parse_agent_config, select_preset

    _, block, where = select_preset("ppo_lstm", "CarRacing-v2", "carracing")
    config = parse_agent_config("ppo_lstm", block, where)
    # rl-zoo3 hyperparams/ppo_lstm.yml CarRacing-v3: no frame skip, 4M steps, gSDE, LSTM 128.
    assert (config.frame_skip, config.n_timesteps, config.n_envs) == (1, 4_000_000, 8)
    hp = config.hyperparams
    assert (hp["n_steps"], hp["batch_size"], hp["n_epochs"], hp["use_sde"]) == (512, 128, 10, True)
    assert config.policy_kwargs["lstm_hidden_size"] == 128
    assert config.policy_kwargs["enable_critic_lstm"] is False
    _, block, where = select_preset("qrdqn", "ALE/Pong-v5", "atari")
    atari = parse_agent_config("qrdqn", block, where)
    assert atari.hyperparams["exploration_fraction"] == 0.025
    assert atari.hyperparams["learning_starts"] == 50_000
