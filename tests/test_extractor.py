"""ReLICExtractor: exact ride-along gradient, EMA target, subclass hooks, bad input."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from stable_baselines3 import DQN, PPO
from torch import nn

from relic_rl import ReLICConfig, ReLICExtractor, relic_loss
from relic_rl.losses import ReLICLossOutput
from tests.helpers import image_vec_env

IMG_SPACE = gym.spaces.Box(0, 255, (3, 40, 40), np.uint8)


def relic_kwargs(**config: Any) -> dict[str, Any]:
    return dict(
        features_extractor_class=ReLICExtractor, features_extractor_kwargs=dict(config=ReLICConfig(**config))
    )


def tiny_ppo(policy_kwargs: dict[str, Any], device: str = "cpu") -> PPO:
    """PPO on 2 fake pixel envs after one 32-step rollout and one update."""
    model = PPO(
        "CnnPolicy",
        image_vec_env(n_envs=2, continuous=True),
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        seed=0,
        device=device,
        policy_kwargs=policy_kwargs,
    )
    model.learn(total_timesteps=32)
    return model


def record_views(extractor: ReLICExtractor) -> list[torch.Tensor]:
    """Make ``extractor.augment`` record every batch of views it produces."""
    views: list[torch.Tensor] = []
    original = extractor.augment

    def augment(obs: torch.Tensor) -> torch.Tensor:
        out = original(obs)
        views.append(out.detach().clone())
        return out

    extractor.augment = augment  # type: ignore[method-assign]
    return views


def reference_aux(ref_extractor: ReLICExtractor, views: torch.Tensor) -> torch.Tensor:
    """aux_weight * L_ReLIC from the pre-update networks, written without the extractor's forward.

    Before the first update the target is a copy of the online encoder and critic.
    """
    cfg = ref_extractor.config
    n_views, batch = views.shape[:2]
    flat = views.reshape(n_views * batch, *views.shape[2:])
    assert ref_extractor.critic is not None
    online = ref_extractor.critic(ref_extractor.encoder(flat)).view(n_views, batch, -1)
    with torch.no_grad():
        target = ref_extractor.critic(ref_extractor.encoder(flat)).view(n_views, batch, -1)
    out = relic_loss(
        online, target, temperature=cfg.temperature, kl_weight=cfg.kl_weight, divergence=cfg.divergence
    )
    return cfg.aux_weight * out.loss


def assert_params_close(a: nn.Module, b: nn.Module, atol: float = 1e-6) -> None:
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        torch.testing.assert_close(pa, pb, atol=atol, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


# --------------------------------------------------------------------------- exactness
def test_ppo_update_equals_single_backward_of_rl_plus_aux_loss_with_clipping() -> None:
    env = image_vec_env(n_envs=2, continuous=True)
    model = PPO(
        "CnnPolicy",
        env,
        n_steps=32,
        batch_size=64,  # one minibatch: one optimizer step
        n_epochs=1,
        max_grad_norm=0.05,  # small enough that clipping is active
        seed=0,
        device="cpu",
        policy_kwargs=relic_kwargs(aux_weight=0.5, kl_weight=1.0),
    )
    ref_policy = copy.deepcopy(model.policy)
    extractor = model.policy.features_extractor
    views = record_views(extractor)
    batches: list[Any] = []
    original_get = model.rollout_buffer.get

    def get(batch_size: int | None = None) -> Any:
        for data in original_get(batch_size):
            batches.append(data)
            yield data

    model.rollout_buffer.get = get  # type: ignore[method-assign]
    model.learn(total_timesteps=64)
    assert len(batches) == 1 and len(views) == 1

    # Independent reference: PPO's clipped objective + aux, one backward, clip, Adam step.
    data = batches[0]
    ref_extractor = ref_policy.features_extractor
    ref_extractor.aux_enabled = False  # plain features; the aux term is added by hand below
    values, log_prob, entropy = ref_policy.evaluate_actions(data.observations, data.actions)
    adv = data.advantages
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = torch.exp(log_prob - data.old_log_prob)
    clip = 0.2
    policy_loss = -torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
    value_loss = F.mse_loss(data.returns, values.flatten())
    entropy_loss = -entropy.mean()
    rl_loss = policy_loss + 0.0 * entropy_loss + 0.5 * value_loss
    total = rl_loss + reference_aux(ref_extractor, views[0])
    ref_policy.optimizer.zero_grad()
    total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(ref_policy.parameters(), 0.05)
    assert grad_norm > 0.05, "the test needs gradient clipping to be active"
    ref_policy.optimizer.step()

    assert_params_close(model.policy, ref_policy)


def test_dqn_update_equals_single_backward_of_rl_plus_aux_loss() -> None:
    env = image_vec_env(n_envs=1, continuous=False)
    model = DQN(
        "CnnPolicy",
        env,
        buffer_size=200,
        learning_starts=10_000,  # collect only; the update is triggered by hand
        batch_size=16,
        max_grad_norm=0.01,
        seed=0,
        device="cpu",
        policy_kwargs=relic_kwargs(aux_weight=1.0, kl_weight=2.0, n_views=3),
    )
    model.learn(total_timesteps=60)
    ref_policy = copy.deepcopy(model.policy)
    extractor = model.policy.q_net.features_extractor
    views = record_views(extractor)
    samples: list[Any] = []
    original_sample = model.replay_buffer.sample

    def sample(batch_size: int, env: Any = None) -> Any:
        data = original_sample(batch_size, env=env)
        samples.append(data)
        return data

    model.replay_buffer.sample = sample  # type: ignore[method-assign]
    model.train(gradient_steps=1, batch_size=16)

    data = samples[0]
    q_net = ref_policy.q_net
    q_net.features_extractor.aux_enabled = False
    with torch.no_grad():
        next_q = ref_policy.q_net_target(data.next_observations).max(dim=1).values.reshape(-1, 1)
        target_q = data.rewards + (1 - data.dones) * model.gamma * next_q
    current_q = torch.gather(q_net(data.observations), dim=1, index=data.actions.long())
    rl_loss = F.smooth_l1_loss(current_q, target_q)
    total = rl_loss + reference_aux(q_net.features_extractor, views[0])
    ref_policy.optimizer.zero_grad()
    total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(ref_policy.parameters(), 0.01)
    assert grad_norm > 0.01
    ref_policy.optimizer.step()

    assert_params_close(model.policy.q_net, ref_policy.q_net)


@pytest.mark.parametrize("switch", [dict(aux_weight=0.0), dict(enabled=False)])
def test_disabled_aux_trains_exactly_like_plain_sb3(switch: dict[str, Any]) -> None:
    def run(policy_kwargs: dict[str, Any] | None) -> list[torch.Tensor]:
        env = image_vec_env(n_envs=2, continuous=True)
        model = PPO(
            "CnnPolicy",
            env,
            n_steps=16,
            batch_size=16,
            n_epochs=2,
            seed=3,
            device="cpu",
            policy_kwargs=policy_kwargs,
        )
        model.learn(total_timesteps=64)
        return [p.detach().clone() for p in model.policy.parameters()]

    plain = run(None)
    # net_arch=[]: what SB3's CnnPolicy uses after NatureCNN (ReLICPPO sets it by default).
    relic = run({**relic_kwargs(**switch), "net_arch": []})
    assert len(plain) == len(relic)
    for a, b in zip(plain, relic, strict=True):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- EMA target
def _dqn(momentum: float, **config: Any) -> DQN:
    env = image_vec_env(n_envs=1, continuous=False)
    model = DQN(
        "CnnPolicy",
        env,
        buffer_size=200,
        learning_starts=10_000,
        batch_size=8,
        seed=1,
        device="cpu",
        policy_kwargs=relic_kwargs(target_momentum=momentum, **config),
    )
    model.learn(total_timesteps=40)
    return model


def _encoder_state(extractor: ReLICExtractor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    assert extractor.target_encoder is not None
    online = {n: p.detach().clone() for n, p in extractor.encoder.named_parameters()}
    target = {n: b.clone() for n, b in extractor.target_encoder.named_buffers()}
    return online, target


def test_ema_target_follows_formula_once_per_optimizer_step() -> None:
    m = 0.9
    model = _dqn(m)
    extractor = model.policy.q_net.features_extractor
    model.train(gradient_steps=1, batch_size=8)  # first update also copies f into h
    extractor.pop_metrics()
    _, h_before = _encoder_state(extractor)
    model.train(gradient_steps=1, batch_size=8)
    f_after, h_after = _encoder_state(extractor)
    for name, h in h_after.items():
        torch.testing.assert_close(h, m * h_before[name] + (1 - m) * f_after[name], rtol=0, atol=1e-7)
    assert extractor.pop_metrics()["ema_updates"] == 1
    model.train(gradient_steps=3, batch_size=8)
    assert extractor.pop_metrics()["ema_updates"] == 3


def test_ema_target_updates_once_per_step_even_with_several_forwards() -> None:
    # SAC calls the critic's extractor twice per gradient step (critic and actor losses).
    from stable_baselines3 import SAC

    env = image_vec_env(n_envs=1, continuous=True)
    model = SAC(
        "CnnPolicy",
        env,
        buffer_size=200,
        learning_starts=10_000,
        batch_size=8,
        seed=0,
        device="cpu",
        policy_kwargs=relic_kwargs(),
    )
    model.learn(total_timesteps=30)
    model.train(gradient_steps=1, batch_size=8)
    critic_extractor = model.policy.critic.features_extractor
    critic_extractor.pop_metrics()
    model.train(gradient_steps=4, batch_size=8)
    assert critic_extractor.pop_metrics()["ema_updates"] == 4


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_momentum_zero_copies_and_one_freezes(momentum: float) -> None:
    model = _dqn(momentum)
    extractor = model.policy.q_net.features_extractor
    model.train(gradient_steps=1, batch_size=8)
    _, h_before = _encoder_state(extractor)
    model.train(gradient_steps=2, batch_size=8)
    f_after, h_after = _encoder_state(extractor)
    for name, h in h_after.items():
        expected = f_after[name] if momentum == 0.0 else h_before[name]
        assert torch.equal(h, expected), name
    if momentum == 1.0:
        assert any(not torch.equal(h_after[n], f_after[n]) for n in h_after)


def test_target_is_never_in_an_optimizer_and_gets_no_gradient() -> None:
    model = tiny_ppo(relic_kwargs(), device="cpu")
    extractor = model.policy.features_extractor
    assert extractor.target_encoder is not None and extractor.target_critic is not None
    target_ids = {id(t) for t in extractor.target_encoder.buffers()} | {
        id(t) for t in extractor.target_critic.buffers()
    }
    optimizer_ids = {id(p) for g in model.policy.optimizer.param_groups for p in g["params"]}
    assert not target_ids & optimizer_ids
    assert list(extractor.target_encoder.parameters()) == []
    assert all(not t.requires_grad and t.grad is None for t in extractor.target_encoder.buffers())
    model.policy.set_training_mode(True)
    assert not extractor.target_encoder.training and extractor.encoder.training
    # The encoder and critic are in the optimizer.
    assert {id(p) for p in extractor.encoder.parameters()} <= optimizer_ids
    assert extractor.critic is not None and {id(p) for p in extractor.critic.parameters()} <= optimizer_ids


# --------------------------------------------------------------------------- forward behaviour
def test_no_aux_loss_outside_updates() -> None:
    extractor = ReLICExtractor(IMG_SPACE, config=ReLICConfig())
    obs = torch.rand(4, 3, 40, 40)
    extractor.eval()
    with torch.no_grad():
        out_eval = extractor(obs)
    extractor.train()
    with torch.no_grad():
        out_nograd = extractor(obs)
    assert extractor.pop_metrics()["aux_updates"] == 0
    assert torch.equal(out_eval, out_nograd)
    features = extractor(obs)
    # Computed, but no optimizer step applied it: dropped, not counted.
    metrics = extractor.pop_metrics()
    assert (metrics["aux_updates"], metrics["aux_dropped"]) == (0, 1)
    # The ride-along is an identity on the features.
    torch.testing.assert_close(features, out_eval, atol=1e-5, rtol=0)


def test_rl_loss_gradient_includes_aux_gradient() -> None:
    torch.manual_seed(0)
    extractor = ReLICExtractor(IMG_SPACE, config=ReLICConfig(aux_weight=2.0, augmentation="identity"))
    obs = torch.rand(6, 3, 40, 40)
    features = extractor(obs)
    features.sum().backward()
    with_aux = [p.grad.clone() for p in extractor.encoder.parameters()]
    critic_grad = [p.grad for p in extractor.critic.parameters()]  # type: ignore[union-attr]
    assert all(g is not None and g.abs().sum() > 0 for g in critic_grad)
    extractor.zero_grad(set_to_none=True)
    extractor.aux_enabled = False
    extractor(obs).sum().backward()
    without = [p.grad.clone() for p in extractor.encoder.parameters()]
    extractor.zero_grad(set_to_none=True)
    # Independent: grad of 2 * relic_loss with identical views (target = online copy, detached).
    flat = torch.cat([obs, obs])
    online = extractor.critic(extractor.encoder(flat)).view(2, 6, -1)  # type: ignore[misc]
    loss = 2.0 * relic_loss(online, online.detach(), temperature=0.1, kl_weight=1.0).loss
    loss.backward()
    aux_only = [p.grad for p in extractor.encoder.parameters()]
    for total, rl, aux in zip(with_aux, without, aux_only, strict=True):
        torch.testing.assert_close(total, rl + aux, atol=1e-5, rtol=1e-4)


def test_batch_of_one_skips_aux_and_counts_it() -> None:
    extractor = ReLICExtractor(IMG_SPACE)
    extractor.train()
    features = extractor(torch.rand(1, 3, 40, 40))
    assert features.shape == (1, 512)
    metrics = extractor.pop_metrics()
    assert metrics["skipped_small_batch"] == 1 and metrics["aux_updates"] == 0


@pytest.mark.parametrize("shape", [(2, 64, 64), (4, 84, 84), (3, 96, 96), (1, 40, 40)])
def test_any_resolution_and_channel_count(shape: tuple[int, int, int]) -> None:
    space = gym.spaces.Box(0, 255, shape, np.uint8)
    extractor = ReLICExtractor(space, config=ReLICConfig(features_dim=64))
    assert extractor.features_dim == 64
    out = extractor(torch.rand(3, *shape))
    out.sum().backward()
    assert out.shape == (3, 64)


@pytest.mark.parametrize(
    ("space", "match"),
    [
        (gym.spaces.Box(-1, 1, (8,), np.float32), r"Box\(-1.0, 1.0, \(8,\)"),
        (gym.spaces.Discrete(4), "Discrete"),
        (gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (3,))}), "Dict"),
    ],
)
def test_non_image_space_is_rejected_with_what_is_supported(space: gym.Space, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        ReLICExtractor(space)
    assert "pixel observations" in str(info.value)


def test_too_small_image_for_default_encoder_is_explained() -> None:
    with pytest.raises(ValueError, match="at least 36x36"):
        ReLICExtractor(gym.spaces.Box(0, 255, (3, 20, 20), np.uint8))


def test_config_must_be_a_relic_config() -> None:
    with pytest.raises(ValueError, match="must be a ReLICConfig"):
        ReLICExtractor(IMG_SPACE, config={"aux_weight": 1.0})  # type: ignore[arg-type]


def test_disabled_config_builds_no_critic_or_target() -> None:
    extractor = ReLICExtractor(IMG_SPACE, config=ReLICConfig(enabled=False))
    assert extractor.critic is None and extractor.target_encoder is None
    extractor.train()
    extractor(torch.rand(4, 3, 40, 40)).sum().backward()
    assert extractor.pop_metrics()["aux_updates"] == 0


def applied(extractor: ReLICExtractor, obs: torch.Tensor) -> torch.Tensor:
    """One update of ``extractor`` on ``obs`` (an SGD step with lr 0: the loss reaches an
    optimizer step, the parameters stay), as the metrics only count applied losses."""
    optimizer = torch.optim.SGD(extractor.parameters(), lr=0.0)
    optimizer.zero_grad()
    features = extractor(obs)
    features.sum().backward()
    optimizer.step()
    return features


def test_metrics_are_averaged_and_reset_on_read() -> None:
    extractor = ReLICExtractor(IMG_SPACE)
    extractor.train()
    for _ in range(3):
        applied(extractor, torch.rand(8, 3, 40, 40))
    metrics = extractor.pop_metrics()
    assert metrics["aux_updates"] == 3 and metrics["aux_dropped"] == 0
    for key in (
        "loss",
        "contrastive",
        "invariance",
        "accuracy",
        "positive_cosine",
        "negative_cosine",
        "ema_distance",
    ):
        assert np.isfinite(metrics[key]), key
    assert 0.0 <= metrics["accuracy"] <= 1.0
    # f did not move (lr 0), so h is still f, up to the rounding of three EMA steps.
    assert metrics["ema_distance"] == pytest.approx(0.0, abs=1e-5)
    assert extractor.pop_metrics()["aux_updates"] == 0


# --------------------------------------------------------------------------- subclass hooks
class TinyEncoder(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class HookedExtractor(ReLICExtractor):
    calls: list[str]

    def build_encoder(self, observation_space: gym.spaces.Box) -> nn.Module:
        return TinyEncoder(observation_space.shape[0])

    def build_critic(self, features_dim: int) -> nn.Module:
        return nn.Linear(features_dim, 5)

    def augment(self, obs: torch.Tensor) -> torch.Tensor:
        self.calls = [*getattr(self, "calls", []), "augment"]
        return torch.stack([obs, obs.flip(-1), 1 - obs])

    def relic_loss(self, online: torch.Tensor, target: torch.Tensor) -> ReLICLossOutput:
        self.calls = [*getattr(self, "calls", []), f"loss{tuple(online.shape)}"]
        out = super().relic_loss(online, target)
        return out._replace(loss=out.contrastive)  # drop the penalty


def test_subclass_hooks_are_used() -> None:
    extractor = HookedExtractor(IMG_SPACE, config=ReLICConfig(n_views=3))
    assert extractor.features_dim == 32  # 8 channels x 2 x 2, found by the dummy forward
    assert isinstance(extractor.target_encoder, TinyEncoder)
    extractor.train()
    applied(extractor, torch.rand(4, 3, 40, 40))
    assert extractor.calls == ["augment", "loss(3, 4, 5)"]
    metrics = extractor.pop_metrics()
    assert metrics["loss"] == pytest.approx(metrics["contrastive"])


def test_subclass_trains_in_sb3() -> None:
    model = tiny_ppo(
        dict(features_extractor_class=HookedExtractor, features_extractor_kwargs={}), device="cpu"
    )
    assert "augment" in model.policy.features_extractor.calls


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_everything_follows_the_policy_device_on_cuda() -> None:
    model = tiny_ppo(relic_kwargs(), device="cuda")
    extractor = model.policy.features_extractor
    assert all(t.is_cuda for t in extractor.target_encoder.buffers())
    assert extractor.pop_metrics()["aux_updates"] > 0


# --------------------------------------------------------------------------- target details
class BatchNormExtractor(ReLICExtractor):
    def build_encoder(self, observation_space: gym.spaces.Box) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(observation_space.shape[0], 4, 3, stride=2),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Flatten(),
            nn.LazyLinear(16),
        )


def test_ema_averages_parameters_and_copies_buffers() -> None:
    extractor = BatchNormExtractor(IMG_SPACE, config=ReLICConfig(target_momentum=0.9))
    extractor.train()
    extractor(torch.rand(8, 3, 40, 40))  # initialises h = f
    extractor(torch.rand(8, 3, 40, 40) * 0.5)  # moves f's BatchNorm statistics only
    online_bn, target_bn = extractor.encoder[1], extractor.target_encoder[1]  # type: ignore[index]
    assert not torch.equal(online_bn.running_var, target_bn.running_var)
    h_weight = target_bn.weight.clone()
    extractor.update_target()
    assert torch.equal(target_bn.running_var, online_bn.running_var)
    assert torch.equal(target_bn.running_mean, online_bn.running_mean)
    assert torch.equal(target_bn.num_batches_tracked, online_bn.num_batches_tracked)
    torch.testing.assert_close(target_bn.weight, 0.9 * h_weight + 0.1 * online_bn.weight.detach())


class TiedExtractor(ReLICExtractor):
    def build_encoder(self, observation_space: gym.spaces.Box) -> nn.Module:
        first = nn.Linear(4, 4)
        second = nn.Linear(4, 4)
        second.weight = first.weight  # tied
        return nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(1), nn.Linear(12, 4), first, second)


def test_tied_parameters_stay_tied_in_the_target() -> None:
    extractor = TiedExtractor(IMG_SPACE)
    target = extractor.target_encoder
    assert target is not None
    assert target[3].weight is target[4].weight  # type: ignore[index]
    with torch.no_grad():
        extractor.encoder[3].weight.add_(1.0)  # type: ignore[index]
    extractor.update_target(momentum=0.0)
    assert torch.equal(target[4].weight, extractor.encoder[4].weight)  # type: ignore[index]


def test_deep_copied_extractor_still_updates_its_target() -> None:
    extractor = ReLICExtractor(IMG_SPACE, config=ReLICConfig(features_dim=32))
    clone = copy.deepcopy(extractor)
    clone.train()
    optimizer = torch.optim.SGD(clone.parameters(), lr=0.1)
    clone(torch.rand(4, 3, 40, 40)).sum().backward()
    optimizer.step()
    assert clone.pop_metrics()["ema_updates"] == 1
    assert extractor.pop_metrics()["ema_updates"] == 0


def test_features_can_be_modified_in_place_by_the_caller() -> None:
    extractor = ReLICExtractor(IMG_SPACE, config=ReLICConfig(features_dim=32))
    extractor.train()
    features = extractor(torch.rand(4, 3, 40, 40))
    features.mul_(2.0).sum().backward()
    assert extractor.critic is not None and next(extractor.critic.parameters()).grad is not None


# --------------------------------------------------------------------------- Dict observations
DICT_SPACE = gym.spaces.Dict(
    {"pixels": IMG_SPACE, "speed": gym.spaces.Box(-1, 1, (3,), np.float32), "gear": gym.spaces.Discrete(4)}
)


def test_dict_with_one_image_encodes_it_and_appends_the_other_entries() -> None:
    extractor = ReLICExtractor(DICT_SPACE, config=ReLICConfig(features_dim=32))
    assert extractor.image_key == "pixels"
    assert extractor.features_dim == 32 + 3 + 4  # Discrete(4) arrives one-hot from SB3
    obs = {
        "pixels": torch.rand(6, 3, 40, 40),
        "speed": torch.rand(6, 3),
        "gear": torch.eye(4)[[0, 1, 2, 3, 0, 1]],
    }
    extractor.train()
    features = extractor(obs)
    assert features.shape == (6, 39)
    # gymnasium sorts Dict keys: the other entries follow the image features in that order.
    assert extractor.extra_keys == ["gear", "speed"]
    torch.testing.assert_close(features[:, 32:], torch.cat([obs["gear"], obs["speed"]], dim=1))
    features.sum().backward()
    torch.optim.SGD(extractor.parameters(), lr=0.0).step()
    assert extractor.pop_metrics()["aux_updates"] == 1
    assert extractor.critic is not None and next(extractor.critic.parameters()).grad is not None


def test_dict_with_several_images_is_rejected() -> None:
    space = gym.spaces.Dict({"left": IMG_SPACE, "right": IMG_SPACE})
    with pytest.raises(ValueError, match=r"several images \['left', 'right'\]"):
        ReLICExtractor(space)


def test_multi_input_policy_trains_with_a_dict_of_pixels_and_state() -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv

    from relic_rl import ReLICPPO
    from tests.fake_pixel_env import FakePixelEnv

    class DictObs(gym.ObservationWrapper):  # type: ignore[type-arg]
        def __init__(self, env: gym.Env) -> None:  # type: ignore[type-arg]
            super().__init__(env)
            self.observation_space = gym.spaces.Dict(
                {"pixels": env.observation_space, "step": gym.spaces.Box(0, 1, (1,), np.float32)}
            )

        def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
            return {"pixels": observation, "step": np.zeros(1, np.float32)}

    env = DummyVecEnv([lambda: DictObs(FakePixelEnv(episode_length=20)) for _ in range(2)])
    model = ReLICPPO("MultiInputPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    extractor = model.policy.features_extractor
    assert isinstance(extractor, ReLICExtractor) and extractor.image_key == "pixels"
    before = [p.detach().clone() for p in extractor.critic.parameters()]  # type: ignore[union-attr]
    model.learn(total_timesteps=64)
    after = list(extractor.critic.parameters())  # type: ignore[union-attr]
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
