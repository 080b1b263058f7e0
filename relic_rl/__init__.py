"""relic-rl: ReLIC as an auxiliary representation loss for Stable-Baselines3 pixel agents."""

from typing import TYPE_CHECKING, Any

from relic_rl.algorithms import (
    ReLICA2C,
    ReLICDQN,
    ReLICPPO,
    ReLICSAC,
    ReLICTD3,
)
from relic_rl.callbacks import ReLICCallback
from relic_rl.config import ReLICConfig
from relic_rl.extractor import ReLICExtractor
from relic_rl.losses import ReLICLoss, ReLICLossOutput, relic_loss

__version__ = "0.1.0"

if TYPE_CHECKING:
    from relic_rl.environments.fast_carracing import FastCarRacing as FastCarRacing


def __getattr__(name: str) -> Any:
    # FastCarRacing needs Box2D and pygame (the box2d extra): imported on first use, and
    # left out of __all__ so that `from ... import *` works without that extra.
    if name == "FastCarRacing":
        from relic_rl import environments

        return environments.FastCarRacing  # AttributeError with an install hint without Box2D
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ReLICA2C",
    "ReLICCallback",
    "ReLICConfig",
    "ReLICDQN",
    "ReLICExtractor",
    "ReLICLoss",
    "ReLICLossOutput",
    "ReLICPPO",
    "ReLICSAC",
    "ReLICTD3",
    "__version__",
    "relic_loss",
]
