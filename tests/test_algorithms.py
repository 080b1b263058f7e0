"""Every SB3 algorithm trains with the ReLIC extractor; convenience classes, logging, save/load."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import configure

from relic_rl import (
    ReLICA2C,
    ReLICCallback,
    ReLICConfig,
    ReLICDQN,
    ReLICExtractor,
    ReLICPPO,
    ReLICSAC,
    ReLICTD3,
)
from relic_rl.algorithms import relic_extractors
from tests.helpers import aux_batch_sizes, image_vec_env, metric_totals

OFF_POLICY = dict(buffer_size=300, learning_starts=40, batch_size=16, train_freq=4)
CASES: list[tuple[type[BaseAlgorithm], bool, dict[str, Any]]] = [
    (ReLICPPO, True, dict(n_steps=32, batch_size=32, n_epochs=2)),
    (ReLICA2C, True, dict(n_steps=8)),
    (ReLICDQN, False, dict(OFF_POLICY, target_update_interval=20)),
    (ReLICSAC, True, dict(OFF_POLICY)),
    (ReLICTD3, True, dict(OFF_POLICY)),
]


def make(cls: type[BaseAlgorithm], continuous: bool, kwargs: dict[str, Any], **extra: Any) -> BaseAlgorithm:
    env = image_vec_env(n_envs=2, continuous=continuous)
    return cls("CnnPolicy", env, seed=0, device="cpu", **kwargs, **extra)


def trained_extractor(model: BaseAlgorithm) -> ReLICExtractor:
    """The extractor the auxiliary loss trains: the critic's for SAC/TD3, else the only one."""
    extractors = relic_extractors(model.policy)
    critic = [e for name, e in extractors.items() if name.startswith("critic")]
    candidates = critic or list(extractors.values())
    assert len(candidates) == 1, list(extractors)
    return candidates[0]


@pytest.mark.parametrize(("cls", "continuous", "kwargs"), CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_each_algorithm_learns_logs_relic_metrics_and_aux_changes_the_encoder(
    cls: type[BaseAlgorithm], continuous: bool, kwargs: dict[str, Any], tmp_path: Path
) -> None:
    def run(config: ReLICConfig) -> tuple[BaseAlgorithm, list[torch.Tensor]]:
        model = make(cls, continuous, kwargs, relic=config)
        model.set_logger(configure(str(tmp_path / str(config.active)), ["csv"]))
        model.learn(total_timesteps=160, log_interval=1)
        return model, [p.detach().clone() for p in trained_extractor(model).encoder.parameters()]

    on_model, on_params = run(ReLICConfig(aux_weight=1.0))
    _, off_params = run(ReLICConfig(enabled=False))
    header = (tmp_path / "True" / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"relic/loss", "relic/invariance", "relic/accuracy", "relic/ema_distance"} <= set(header)
    assert any(not torch.equal(a, b) for a, b in zip(on_params, off_params, strict=True))
    assert trained_extractor(on_model).ema_distance() > 0


@pytest.mark.parametrize("algo", [SAC, TD3])
@pytest.mark.parametrize("share", [False, True])
def test_sac_td3_train_the_critic_encoder_or_the_shared_one(algo: type[BaseAlgorithm], share: bool) -> None:
    relic_cls = ReLICSAC if algo is SAC else ReLICTD3
    model = make(relic_cls, True, dict(OFF_POLICY), policy_kwargs=dict(share_features_extractor=share))
    policy = model.policy
    critic_extractor = policy.critic.features_extractor
    actor_extractor = policy.actor.features_extractor
    assert (critic_extractor is actor_extractor) == share
    before = [p.detach().clone() for p in critic_extractor.encoder.parameters()]
    totals = metric_totals(critic_extractor)
    model.learn(total_timesteps=120)
    critic_extractor.pop_metrics()
    assert totals["aux_updates"] > 0 and totals["ema_updates"] > 0
    assert any(
        not torch.equal(a, b) for a, b in zip(before, critic_extractor.encoder.parameters(), strict=True)
    )
    if not share:
        assert not actor_extractor.aux_enabled
        assert actor_extractor.pop_metrics()["aux_updates"] == 0
    # Which optimizer owns the trained encoder is explicit.
    owner = policy.actor.optimizer if share else policy.critic.optimizer
    owned = {id(p) for g in owner.param_groups for p in g["params"]}
    assert {id(p) for p in critic_extractor.encoder.parameters()} <= owned


@pytest.mark.parametrize(
    ("plain", "relic_cls", "continuous", "kwargs"),
    [
        (PPO, ReLICPPO, True, CASES[0][2]),
        (DQN, ReLICDQN, False, CASES[2][2]),
        (A2C, ReLICA2C, True, CASES[1][2]),
    ],
)
def test_save_load_round_trip_restores_f_g_h_and_optimizer(
    plain: type[BaseAlgorithm],
    relic_cls: type[BaseAlgorithm],
    continuous: bool,
    kwargs: dict[str, Any],
    tmp_path: Path,
) -> None:
    model = make(relic_cls, continuous, kwargs)
    model.learn(total_timesteps=120)
    path = tmp_path / "model.zip"
    model.save(path)
    obs = np.stack([model.observation_space.sample() for _ in range(5)])
    actions, _ = model.predict(obs, deterministic=True)
    state = model.policy.state_dict()
    for loader in (relic_cls, plain):
        loaded = loader.load(path, env=image_vec_env(n_envs=2, continuous=continuous), device="cpu")
        loaded_state = loaded.policy.state_dict()
        assert state.keys() == loaded_state.keys()
        assert any("target_encoder" in k for k in state)
        for key, value in state.items():
            assert torch.equal(value, loaded_state[key]), key
        opt_a = model.policy.optimizer.state_dict()["state"]
        opt_b = loaded.policy.optimizer.state_dict()["state"]
        assert opt_a.keys() == opt_b.keys()
        assert opt_a, "the optimizer has state after training"
        for k in opt_a:
            for name, value in opt_a[k].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt_b[k][name])), (k, name)
        loaded_actions, _ = loaded.predict(obs, deterministic=True)
        np.testing.assert_array_equal(actions, loaded_actions)
        extractor = trained_extractor(loaded)
        assert extractor.aux_enabled and bool(extractor.target_initialized)
        before = [p.detach().clone() for p in extractor.encoder.parameters()]
        loaded.learn(total_timesteps=64)  # training continues
        assert any(not torch.equal(a, b) for a, b in zip(before, extractor.encoder.parameters(), strict=True))


def test_drop_in_path_with_callback_logs_relic_metrics(tmp_path: Path) -> None:
    model = PPO(
        "CnnPolicy",
        image_vec_env(n_envs=2),
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs=dict(
            features_extractor_class=ReLICExtractor, features_extractor_kwargs=dict(config=ReLICConfig())
        ),
    )
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(total_timesteps=96, callback=ReLICCallback())
    assert "relic/loss" in (tmp_path / "progress.csv").read_text()


def test_relic_keyword_builds_the_extractor_with_that_config() -> None:
    config = ReLICConfig(temperature=0.3, n_views=3)
    model = ReLICPPO("CnnPolicy", image_vec_env(), relic=config, n_steps=16, batch_size=16, device="cpu")
    assert isinstance(model.policy.features_extractor, ReLICExtractor)
    assert model.policy.features_extractor.config == config
    assert model.relic_config == config


def test_relic_config_given_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="given twice"):
        ReLICPPO(
            "CnnPolicy",
            image_vec_env(),
            relic=ReLICConfig(),
            policy_kwargs=dict(features_extractor_kwargs=dict(config=ReLICConfig())),
        )


def test_non_relic_extractor_with_relic_class_is_an_error() -> None:
    from stable_baselines3.common.torch_layers import NatureCNN

    with pytest.raises(ValueError, match="not a ReLICExtractor subclass"):
        ReLICPPO("CnnPolicy", image_vec_env(), policy_kwargs=dict(features_extractor_class=NatureCNN))


def test_relic_keyword_with_other_policy_is_an_error() -> None:
    with pytest.raises(ValueError, match="only applies to policy='CnnPolicy' or 'MultiInputPolicy'"):
        ReLICPPO("MlpPolicy", image_vec_env(), relic=ReLICConfig())


@pytest.mark.parametrize(
    ("plain", "relic_cls", "continuous", "kwargs"),
    [
        (PPO, ReLICPPO, True, CASES[0][2]),
        (A2C, ReLICA2C, True, CASES[1][2]),
        (DQN, ReLICDQN, False, CASES[2][2]),
        (SAC, ReLICSAC, True, CASES[3][2]),
        (TD3, ReLICTD3, True, CASES[4][2]),
    ],
)
def test_disabled_relic_class_trains_exactly_like_the_plain_algorithm(
    plain: type[BaseAlgorithm], relic_cls: type[BaseAlgorithm], continuous: bool, kwargs: dict[str, Any]
) -> None:
    def run(model: BaseAlgorithm) -> list[torch.Tensor]:
        model.learn(total_timesteps=96)
        return [p.detach().clone() for p in model.policy.parameters()]

    reference = run(make(plain, continuous, kwargs))
    # SAC/TD3 in SB3's own encoder layout (their ReLIC default is the CURL/DrQ one).
    layout = dict(policy_kwargs=dict(encoder_mode="separate")) if plain in (SAC, TD3) else {}
    relic = run(make(relic_cls, continuous, kwargs, relic=ReLICConfig(enabled=False), **layout))
    assert len(reference) == len(relic)
    for a, b in zip(reference, relic, strict=True):
        assert a.shape == b.shape and torch.equal(a, b)


def test_sac_computes_the_aux_loss_once_per_gradient_step() -> None:
    model = make(ReLICSAC, True, dict(OFF_POLICY, learning_starts=10_000))
    model.learn(total_timesteps=30)
    extractor = model.policy.critic.features_extractor
    calls = aux_batch_sizes(extractor, "relic_loss")
    model.train(gradient_steps=3, batch_size=16)
    assert calls == [16, 16, 16]


def _with_tqc(classes: list[type]) -> list[Any]:
    """``classes`` plus ReLICTQC (SAC's actor and critics), skipped without sb3-contrib."""
    try:
        from relic_rl.contrib import ReLICTQC
    except ImportError:  # pragma: no cover - the contrib extra is not installed
        return [*classes, pytest.param(None, marks=pytest.mark.skip(reason="needs sb3-contrib"))]
    return [*classes, ReLICTQC]


@pytest.mark.parametrize("algo_class", _with_tqc([ReLICSAC, ReLICTD3]))
def test_off_policy_relic_policies_deep_copy_and_pickle_with_their_own_critic(algo_class: type) -> None:
    model = algo_class(
        "CnnPolicy",
        image_vec_env(n_envs=1, continuous=True),
        buffer_size=64,
        learning_starts=0,
        batch_size=8,
        seed=0,
        device="cpu",
    )
    policy = model.policy
    clone = copy.deepcopy(policy)
    restored = pickle.loads(pickle.dumps(policy))
    obs = torch.rand(4, *policy.observation_space.shape)
    actions = torch.zeros(4, *policy.action_space.shape, requires_grad=True)
    with torch.no_grad():
        for p in clone.critic.parameters():
            p.add_(0.5)
    # The copy's critic runs the copy's parameters, not the original's.
    assert not torch.allclose(clone.critic(obs, actions)[0], policy.critic(obs, actions)[0])
    torch.testing.assert_close(restored.critic(obs, actions)[0], policy.critic(obs, actions)[0])
    # In each of them, a critic call on actions with gradient (the actor loss) computes no
    # auxiliary loss and leaves the extractor's switch as it was.
    for p_ in (policy, clone, restored):
        extractor = p_.critic.features_extractor
        extractor.train()
        extractor.pop_metrics()
        p_.critic(obs, actions)[0].sum().backward()
        assert extractor.aux_enabled and extractor.pop_metrics()["aux_dropped"] == 0
        p_.critic(obs, actions.detach())[0].sum()
        assert extractor.pop_metrics()["aux_dropped"] == 1  # computed (no optimizer step followed)
