"""The example scripts run end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from examples.custom_extractor import ImpalaEncoder, ImpalaReLICExtractor
from relic_rl import ReLICConfig

ROOT = Path(__file__).resolve().parents[1]


def test_custom_extractor_example_trains_with_an_impala_encoder() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "examples/custom_extractor.py", "--timesteps", "512"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "encoder: ImpalaEncoder" in result.stdout
    assert "relic/loss" in result.stdout


def test_impala_subclass_keeps_target_in_sync_shape() -> None:
    space = gym.spaces.Box(0, 255, (2, 64, 64), np.uint8)
    extractor = ImpalaReLICExtractor(space, config=ReLICConfig(features_dim=64))
    assert isinstance(extractor.encoder, ImpalaEncoder) and isinstance(
        extractor.target_encoder, ImpalaEncoder
    )
    assert extractor.features_dim == 64
    extractor.train()
    extractor(torch.rand(4, 2, 64, 64)).sum().backward()
    torch.optim.SGD(extractor.parameters(), lr=0.0).step()  # metrics count applied losses
    assert extractor.pop_metrics()["aux_updates"] == 1
