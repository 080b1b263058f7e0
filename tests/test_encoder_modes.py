"""SAC/TD3 encoder layouts: by default one encoder trained by the critic and auxiliary losses
and read detached by the actor (CURL, DrQ); SB3's two layouts stay selectable."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm

from relic_rl import ReLICConfig, ReLICExtractor, ReLICSAC, ReLICTD3, relic_loss
from relic_rl.policies import (
    ReLICSACCnnPolicy,
    ReLICTD3CnnPolicy,
    resolve_encoder_mode,
)
from tests.helpers import image_vec_env, metric_totals

try:  # TQC (sb3-contrib) has SAC's actor and critics, so it gets the same layouts.
    from sb3_contrib import TQC

    from relic_rl.contrib import ReLICTQC, ReLICTQCCnnPolicy

    _TQC: list[Any] = [ReLICTQC]
    _TQC_LOAD: list[Any] = [(ReLICTQC, TQC, ReLICTQCCnnPolicy)]
except ImportError:  # pragma: no cover - the contrib extra is not installed
    _TQC, _TQC_LOAD = [], []

#: Every off-policy actor-critic class with ``encoder_mode``.
OFF_POLICY = [ReLICSAC, ReLICTD3, *_TQC]

CONFIG = ReLICConfig(augmentation="identity", aux_weight=2.0, n_views=2)


def _model(cls: type[BaseAlgorithm], **kwargs: Any) -> BaseAlgorithm:
    kwargs = {
        "buffer_size": 200,
        "learning_starts": 10_000,  # learn() only collects; the test calls train() itself
        "batch_size": 8,
        "seed": 0,
        "device": "cpu",
        "relic": CONFIG,
        **kwargs,
    }
    return cls("CnnPolicy", image_vec_env(n_envs=2, continuous=True), **kwargs)


def _encoder_params(model: BaseAlgorithm) -> list[torch.Tensor]:
    return list(model.policy.critic.features_extractor.encoder.parameters())


def _record_grads_at_steps(model: BaseAlgorithm) -> dict[str, list[list[torch.Tensor | None]]]:
    """Encoder gradients as each optimizer is about to step."""
    seen: dict[str, list[list[torch.Tensor | None]]] = {"critic": [], "actor": []}
    for name in seen:
        optimizer = getattr(model.policy, name).optimizer

        def record(opt: Any, args: Any, kwargs: Any, name: str = name) -> None:
            seen[name].append([None if p.grad is None else p.grad.clone() for p in _encoder_params(model)])

        optimizer.register_step_pre_hook(record)
    return seen


@pytest.mark.parametrize("cls", OFF_POLICY)
def test_the_default_layout_is_one_encoder_owned_and_trained_by_the_critic(cls: type[BaseAlgorithm]) -> None:
    policy = _model(cls).policy
    assert policy.encoder_mode == "critic"
    extractor = policy.critic.features_extractor
    assert isinstance(extractor, ReLICExtractor) and policy.actor.features_extractor is extractor
    encoder = {id(p) for p in extractor.parameters()}
    assert not encoder & {id(p) for p in policy.actor.parameters()}
    actor_owned = {id(p) for g in policy.actor.optimizer.param_groups for p in g["params"]}
    critic_owned = {id(p) for g in policy.critic.optimizer.param_groups for p in g["params"]}
    assert not encoder & actor_owned and encoder <= critic_owned
    # The target critic has its own encoder; the policy's state dict holds each encoder once.
    assert policy.critic_target.features_extractor is not extractor
    assert not any(
        k.startswith(("actor.features_extractor", "actor_target.features_extractor"))
        for k in policy.state_dict()
    )
    if cls is ReLICTD3:
        assert policy.actor_target.features_extractor is policy.critic_target.features_extractor
        assert not {id(p) for p in policy.critic_target.features_extractor.parameters()} & {
            id(p) for p in policy.actor_target.parameters()
        }


def test_td3_encoder_gradient_is_critic_loss_plus_aux_and_the_actor_loss_adds_nothing() -> None:
    model = _model(ReLICTD3, policy_delay=1, target_policy_noise=0.0, gamma=0.9)
    model.learn(40)
    reference = copy.deepcopy(model.policy)  # the networks as the update starts
    batches: list[Any] = []
    sample = model.replay_buffer.sample

    def recording_sample(*args: Any, **kwargs: Any) -> Any:
        batches.append(sample(*args, **kwargs))
        return batches[-1]

    model.replay_buffer.sample = recording_sample  # type: ignore[method-assign]
    grads = _record_grads_at_steps(model)
    totals = metric_totals(model.policy.critic.features_extractor)
    model.train(gradient_steps=1, batch_size=8)
    (batch,) = batches
    (at_critic,) = grads["critic"]
    (at_actor,) = grads["actor"]

    # Independent computation: TD3's critic loss from the networks, plus aux_weight x ReLIC on
    # two identical (identity) views whose targets are the online outputs (the first update
    # copies f and g into the target), without gradient.
    obs = batch.observations.float() / 255.0
    extractor = reference.critic.features_extractor
    with torch.no_grad():
        next_actions = reference.actor_target(batch.next_observations).clamp(-1, 1)
        next_q = torch.cat(reference.critic_target(batch.next_observations, next_actions), dim=1)
        target_q = batch.rewards + (1 - batch.dones) * 0.9 * next_q.min(dim=1, keepdim=True).values
    features = extractor.encoder(obs)
    critic_loss = sum(
        F.mse_loss(q_net(torch.cat([features, batch.actions], dim=1)), target_q)
        for q_net in reference.critic.q_networks
    )
    online = extractor.critic(extractor.encoder(torch.cat([obs, obs]))).view(2, obs.shape[0], -1)
    aux = relic_loss(
        online,
        online.detach(),
        temperature=CONFIG.temperature,
        kl_weight=CONFIG.kl_weight,
        normalize=CONFIG.normalize,
        divergence=CONFIG.divergence,
    ).loss
    (critic_loss + CONFIG.aux_weight * aux).backward()
    expected = [p.grad for p in extractor.encoder.parameters()]
    for got, want in zip(at_critic, expected, strict=True):
        assert got is not None and want is not None
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    # The actor's step finds the encoder's gradients exactly as the critic's step left them.
    for after, before in zip(at_actor, at_critic, strict=True):
        assert after is not None and before is not None and torch.equal(after, before)
    assert totals == {"aux_updates": 1.0, "ema_updates": 1.0}


@pytest.mark.parametrize("cls", OFF_POLICY)
def test_the_actor_loss_leaves_the_encoder_alone_and_the_ema_moves_once_per_critic_step(
    cls: type[BaseAlgorithm],
) -> None:
    model = _model(cls, **({"policy_delay": 1} if cls is ReLICTD3 else {}))
    model.learn(40)
    grads = _record_grads_at_steps(model)
    totals = metric_totals(model.policy.critic.features_extractor)
    model.train(gradient_steps=3, batch_size=8)
    assert len(grads["critic"]) == len(grads["actor"]) == 3
    for at_critic, at_actor in zip(grads["critic"], grads["actor"], strict=True):
        assert all(g is not None and g.abs().sum() > 0 for g in at_critic)
        assert all(torch.equal(a, c) for a, c in zip(at_actor, at_critic, strict=True))  # type: ignore[arg-type]
    assert totals == {"aux_updates": 3.0, "ema_updates": 3.0}


@pytest.mark.parametrize(
    ("cls", "plain", "policy_class"),
    [(ReLICSAC, SAC, ReLICSACCnnPolicy), (ReLICTD3, TD3, ReLICTD3CnnPolicy), *_TQC_LOAD],
)
def test_plain_sb3_load_keeps_the_layout(
    cls: type[BaseAlgorithm], plain: type[BaseAlgorithm], policy_class: type, tmp_path: Path
) -> None:
    model = _model(cls, learning_starts=20)
    model.learn(40)
    model.save(tmp_path / "model.zip")
    loaded = plain.load(tmp_path / "model.zip", env=image_vec_env(n_envs=2, continuous=True), device="cpu")
    assert type(loaded.policy) is policy_class and loaded.policy.encoder_mode == "critic"
    assert loaded.policy.actor.features_extractor is loaded.policy.critic.features_extractor
    state, loaded_state = model.policy.state_dict(), loaded.policy.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) for k in state)
    # SB3's parameter round trip, with random values of the same shapes and dtypes.
    params = loaded.get_parameters()
    noisy = {
        name: {k: torch.rand_like(v) for k, v in part.items() if isinstance(v, torch.Tensor)}
        for name, part in params.items()
        if name == "policy"
    }
    loaded.set_parameters(noisy, exact_match=False)
    now = loaded.policy.state_dict()
    assert all(torch.equal(now[k], v) for k, v in noisy["policy"].items())
    loaded.learn(24, reset_num_timesteps=False)  # and it trains on


@pytest.mark.parametrize("cls", OFF_POLICY)
@pytest.mark.parametrize(
    ("kwargs", "mode"),
    [
        ({"encoder_mode": "separate"}, "separate"),
        ({"share_features_extractor": True}, "shared"),
        ({"share_features_extractor": False}, "separate"),
    ],
)
def test_sb3_layouts_stay_selectable(cls: type[BaseAlgorithm], kwargs: dict[str, Any], mode: str) -> None:
    policy = _model(cls, policy_kwargs=kwargs).policy
    assert policy.encoder_mode == mode
    shared = policy.actor.features_extractor is policy.critic.features_extractor
    assert shared == (mode == "shared")
    assert "actor.features_extractor.encoder.cnn.0.weight" in policy.state_dict()


def test_encoder_mode_errors_say_what_is_accepted() -> None:
    assert resolve_encoder_mode(None, None) == "critic"
    with pytest.raises(ValueError, match=r"encoder_mode must be one of \['critic', 'separate', 'shared'\]"):
        resolve_encoder_mode("actor", None)
    with pytest.raises(ValueError, match="contradicts share_features_extractor=False"):
        resolve_encoder_mode("critic", False)
    with pytest.raises(ValueError, match="contradicts"):
        _model(ReLICSAC, policy_kwargs={"encoder_mode": "separate", "share_features_extractor": True})


def test_actions_from_the_detached_actor_match_a_manual_forward() -> None:
    policy = _model(ReLICSAC).policy
    obs = torch.randint(0, 256, (3, *policy.observation_space.shape)).float()
    features = policy.critic.features_extractor.encoder(obs / 255.0)
    mean = policy.actor.mu(policy.actor.latent_pi(features))
    np.testing.assert_allclose(
        policy.actor(obs, deterministic=True).detach().numpy(),
        torch.tanh(mean).detach().numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
