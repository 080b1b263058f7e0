"""Subclass the ReLIC extractor with an IMPALA-style ResNet encoder and train PPO with it.

The subclass only overrides :meth:`ReLICExtractor.build_encoder`; the critic, the EMA
target, the augmentations and the loss ride along unchanged. Run from the repository root:

    python examples/custom_extractor.py --timesteps 4096

It trains on a small synthetic pixel task by default (``--env`` takes any gymnasium id with
image observations, e.g. ``CarRacing-v2``) and prints the ReLIC metrics of the last update.
The same class works from the CLI: ``python -m relic_rl.train --env CarRacing-v2
--extractor examples.custom_extractor:ImpalaReLICExtractor``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import torch
from torch import nn

from relic_rl import ReLICConfig, ReLICExtractor, ReLICPPO


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (pre-activation), [B, C, H, W] -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ImpalaEncoder(nn.Module):
    """IMPALA CNN (Espeholt et al., 2018): per stage conv, max-pool /2, two residual blocks.

    :param in_channels: channels of the (stacked) input frames.
    :param depths: channels of each stage.
    :param features_dim: output size of the final linear layer.
    """

    def __init__(
        self, in_channels: int, depths: tuple[int, ...] = (16, 32, 32), features_dim: int = 256
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        for depth in depths:
            stages += [
                nn.Conv2d(in_channels, depth, 3, padding=1),
                nn.MaxPool2d(3, stride=2, padding=1),
                ResidualBlock(depth),
                ResidualBlock(depth),
            ]
            in_channels = depth
        self.stages = nn.Sequential(*stages, nn.ReLU(), nn.Flatten())
        # LazyLinear infers the flatten size from the first (dummy) forward of the extractor.
        self.head = nn.Sequential(nn.LazyLinear(features_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:param x: [B, C, H, W] in [0, 1]. :return: [B, features_dim]."""
        return self.head(self.stages(x))


class ImpalaReLICExtractor(ReLICExtractor):
    """The ReLIC extractor with an IMPALA ResNet as online encoder f (and EMA target h)."""

    def build_encoder(self, observation_space: gym.spaces.Box) -> nn.Module:
        encoder = ImpalaEncoder(observation_space.shape[0], features_dim=self.config.features_dim)
        with torch.no_grad():  # materialise the lazy layer before the target copy is made
            encoder(torch.zeros(1, *observation_space.shape))
        return encoder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="tests.fake_pixel_env:FakePixel-v0", help="gymnasium id with pixels")
    parser.add_argument("--timesteps", type=int, default=4096, help="training steps (default 4096)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the tests' fake env

    from relic_rl.environments import make_vec_env

    env = make_vec_env(args.env, n_envs=4, seed=args.seed)
    model = ReLICPPO(
        "CnnPolicy",
        env,
        relic=ReLICConfig(features_dim=256),
        n_steps=128,
        batch_size=128,
        n_epochs=2,
        seed=args.seed,
        device="cpu",
        policy_kwargs=dict(features_extractor_class=ImpalaReLICExtractor),
    )
    model.learn(total_timesteps=args.timesteps, log_interval=1)
    extractor = model.policy.features_extractor
    assert isinstance(extractor, ImpalaReLICExtractor)
    print("encoder:", type(extractor.encoder).__name__, "features_dim:", extractor.features_dim)
    print(
        "last ReLIC metrics:", {k: round(v, 4) for k, v in model.logger.name_to_value.items() if "relic" in k}
    )


if __name__ == "__main__":
    main()
