"""relic-rl: ReLIC as an auxiliary representation loss for Stable-Baselines3 pixel agents."""

from relic_rl.algorithms import (
    ReLICA2C,
    ReLICCallback,
    ReLICDQN,
    ReLICPPO,
    ReLICSAC,
    ReLICTD3,
)
from relic_rl.config import ReLICConfig
from relic_rl.extractor import ReLICExtractor
from relic_rl.losses import ReLICLoss, ReLICLossOutput, relic_loss

__version__ = "0.1.0"

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
