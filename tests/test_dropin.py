"""ReLICExtractor takes NatureCNN's constructor arguments, and its state dict is all floats."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from torch import nn

from relic_rl import ReLICConfig, ReLICExtractor
from tests.helpers import image_vec_env

IMG_SPACE = gym.spaces.Box(0, 255, (3, 40, 40), np.uint8)


def _ppo(**extractor_kwargs: object) -> PPO:
    return PPO(
        "CnnPolicy",
        image_vec_env(n_envs=2),
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        seed=0,
        policy_kwargs=dict(
            features_extractor_class=ReLICExtractor, features_extractor_kwargs=extractor_kwargs
        ),
    )


def test_features_dim_sizes_it_like_nature_cnn() -> None:
    model = _ppo(features_dim=64)
    extractor = model.policy.features_extractor
    assert isinstance(extractor, ReLICExtractor) and extractor.features_dim == 64
    assert extractor.config.features_dim == 64
    model.learn(32)  # and it trains with the auxiliary loss on
    assert extractor.pop_metrics()["ema_updates"] >= 1


def test_features_dim_wins_over_the_config() -> None:
    extractor = ReLICExtractor(
        IMG_SPACE, config=ReLICConfig(features_dim=256, temperature=0.2), features_dim=32
    )
    assert extractor.features_dim == 32
    assert extractor.config.features_dim == 32 and extractor.config.temperature == 0.2


def test_a_custom_encoder_of_another_size_is_refused() -> None:
    class Fixed(ReLICExtractor):
        def build_encoder(self, observation_space: gym.spaces.Box) -> nn.Module:
            return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(observation_space.shape)), 10))

    assert Fixed(IMG_SPACE).features_dim == 10
    with pytest.raises(
        ValueError, match=r"features_dim=20 was asked for, but Fixed.build_encoder returns 10"
    ):
        Fixed(IMG_SPACE, features_dim=20)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_features_dim(bad: object) -> None:
    with pytest.raises(ValueError, match="`features_dim` must be a positive integer"):
        ReLICExtractor(IMG_SPACE, features_dim=bad)  # type: ignore[arg-type]


def test_normalized_image_accepts_uint8_with_other_bounds() -> None:
    odd = gym.spaces.Box(0, 1, (3, 40, 40), np.uint8)
    with pytest.raises(ValueError, match="bounds other than"):
        ReLICExtractor(odd)
    assert ReLICExtractor(odd, normalized_image=True).features_dim == 512


FLOAT_SPACE = gym.spaces.Box(0.0, 1.0, (3, 40, 40), np.float32)


class _FloatImageEnv(gym.Env[np.ndarray, int]):
    """Channels-first float images in [0, 1], as after a user's own normalisation."""

    observation_space = FLOAT_SPACE
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


def test_float_images_are_refused_as_nature_cnn_refuses_them() -> None:
    from stable_baselines3.common.torch_layers import NatureCNN

    with pytest.raises(AssertionError):
        NatureCNN(FLOAT_SPACE)  # the behaviour being matched
    with pytest.raises(ValueError, match=r"dtype float32.*normalize_images=False") as caught:
        ReLICExtractor(FLOAT_SPACE)
    assert isinstance(caught.value, AssertionError)  # caught where NatureCNN's assert is
    assert ReLICExtractor(FLOAT_SPACE, normalized_image=True).features_dim == 512


def test_sb3_passes_normalized_image_to_it_as_to_nature_cnn() -> None:
    from stable_baselines3.common.torch_layers import NatureCNN

    assert issubclass(ReLICExtractor, NatureCNN)
    kwargs = dict(features_extractor_class=ReLICExtractor, features_extractor_kwargs=dict(features_dim=32))
    with pytest.raises(AssertionError, match="dtype float32"):
        PPO("CnnPolicy", _FloatImageEnv(), n_steps=16, batch_size=16, policy_kwargs=dict(kwargs))
    model = PPO(
        "CnnPolicy",
        _FloatImageEnv(),
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        seed=0,
        policy_kwargs=dict(kwargs, normalize_images=False),
    )
    extractor = model.policy.features_extractor
    assert isinstance(extractor, ReLICExtractor) and extractor.features_dim == 32
    model.learn(32)  # float observations reach the encoder unscaled and it trains
    assert extractor.pop_metrics()["ema_updates"] >= 1


def test_state_dict_holds_only_floating_tensors_and_survives_random_parameters() -> None:
    model = _ppo()
    model.learn(32)
    state = model.policy.state_dict()
    assert all(t.is_floating_point() for t in state.values()), [
        k for k, t in state.items() if not t.is_floating_point()
    ]
    # SB3's own round trip, with random values of each tensor's shape and dtype.
    # Keys that alias one tensor (PPO's shared extractor appears as features_extractor and
    # pi/vf_features_extractor) get one value, as they would in any real state dict.
    by_storage: dict[int, torch.Tensor] = {}
    policy = {
        k: by_storage.setdefault(v.data_ptr(), torch.rand_like(v))
        for k, v in model.policy.state_dict().items()
    }
    random = {"policy": policy}
    model.set_parameters(random, exact_match=False)
    for key, value in random["policy"].items():
        assert torch.equal(model.policy.state_dict()[key], value), key
    model.learn(32)  # still trains


def test_a_bool_flag_saved_by_an_earlier_release_loads() -> None:
    extractor = ReLICExtractor(IMG_SPACE)
    state = extractor.state_dict()
    state["target_initialized"] = torch.ones((), dtype=torch.bool)
    fresh = ReLICExtractor(IMG_SPACE)
    fresh.load_state_dict(state)
    assert fresh.target_initialized.dtype == torch.float32 and float(fresh.target_initialized) == 1.0
    assert fresh._target_ready()
