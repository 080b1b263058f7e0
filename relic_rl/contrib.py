"""ReLIC for sb3-contrib algorithms (``pip install "relic-rl[contrib]"``), as :mod:`relic_rl.algorithms`.

* :class:`ReLICTQC`: the encoder layouts of :class:`~relic_rl.algorithms.ReLICSAC`.
* :class:`ReLICTRPO`: an auxiliary gradient inside TRPO's natural-gradient step is not what its trust
  region bounds, so the auxiliary loss rides on the value step only, on the value function's own
  encoder (``share_features_extractor=False``, the default here; a shared encoder is refused); the policy
  encoder's auxiliary loss is off.
* :class:`ReLICRecurrentPPO`: padded (all-zero) sequence rows are kept out of the auxiliary loss too
  (:attr:`~relic_rl.extractor.ReLICExtractor.aux_rows`).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

from sb3_contrib import QRDQN, TQC, TRPO, MaskablePPO, RecurrentPPO
from sb3_contrib.tqc import policies as tqc_policies

from relic_rl.algorithms import _ReLICMixin, relic_extractors
from relic_rl.extractor import ReLICExtractor
from relic_rl.policies import _CriticEncoderMixin, _DetachedFeatures

__all__ = [
    "ReLICMaskablePPO",
    "ReLICQRDQN",
    "ReLICRecurrentPPO",
    "ReLICTQC",
    "ReLICTQCCnnPolicy",
    "ReLICTQCMultiInputPolicy",
    "ReLICTRPO",
]


def _masked_batches(samples: Iterator[Any], extractors: list[ReLICExtractor]) -> Generator[Any, None, None]:
    """``samples`` with each minibatch's real rows (``mask``) handed to ``extractors`` first."""
    try:
        for batch in samples:
            rows = batch.mask > 1e-8  # RecurrentPPO's own test for a real row
            for extractor in extractors:
                extractor.aux_rows = rows
            yield batch
    finally:
        for extractor in extractors:
            extractor.aux_rows = None


class ReLICRecurrentPPO(_ReLICMixin, RecurrentPPO):
    """RecurrentPPO with the ReLIC auxiliary loss; use ``"CnnLstmPolicy"`` or ``"MultiInputLstmPolicy"``."""

    _relic_policies = ("CnnLstmPolicy", "MultiInputLstmPolicy")

    def train(self) -> None:
        buffer = self.rollout_buffer
        original = buffer.get
        extractors = list(relic_extractors(self.policy).values())
        # An instance attribute for this call only, so the buffer is left as it was.
        buffer.get = lambda batch_size=None: _masked_batches(original(batch_size), extractors)  # type: ignore[method-assign]
        try:
            super().train()
        finally:
            del buffer.get


class ReLICQRDQN(_ReLICMixin, QRDQN):
    """QR-DQN with the ReLIC auxiliary loss (``relic=ReLICConfig(...)``)."""


class DetachedTQCActor(_DetachedFeatures, tqc_policies.Actor):
    """sb3-contrib's TQC actor reading the critic's encoder detached."""


class ReLICTQCCnnPolicy(_CriticEncoderMixin, tqc_policies.CnnPolicy):
    """sb3-contrib's TQC ``CnnPolicy`` with ``encoder_mode`` (default ``critic``)."""

    _detached_actor = DetachedTQCActor


class ReLICTQCMultiInputPolicy(_CriticEncoderMixin, tqc_policies.MultiInputPolicy):
    """sb3-contrib's TQC ``MultiInputPolicy`` with ``encoder_mode`` (default ``critic``)."""

    _detached_actor = DetachedTQCActor


class ReLICTQC(_ReLICMixin, TQC):
    """TQC with the ReLIC auxiliary loss; encoder layouts as for :class:`~relic_rl.algorithms.ReLICSAC`."""

    _nature_net_arch = None
    policy_aliases = {
        **TQC.policy_aliases,
        "CnnPolicy": ReLICTQCCnnPolicy,
        "MultiInputPolicy": ReLICTQCMultiInputPolicy,
    }


class ReLICTRPO(_ReLICMixin, TRPO):
    """TRPO with the ReLIC auxiliary loss on the value step (see the module docstring).

    :raises ValueError: for ``policy_kwargs=dict(share_features_extractor=True)``.
    """

    def __init__(self, policy: Any = "CnnPolicy", env: Any = None, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("_init_setup_model", True) and policy in self._relic_policies:
            policy_kwargs = dict(kwargs.get("policy_kwargs") or {})
            if policy_kwargs.setdefault("share_features_extractor", False):
                raise ValueError(
                    "ReLICTRPO needs policy_kwargs=dict(share_features_extractor=False): TRPO updates a "
                    "shared encoder by its natural-gradient policy step only (it drops the value step's "
                    "gradient there), where an auxiliary gradient does not belong. With separate "
                    "encoders the auxiliary loss trains the value function's encoder; or use ReLICPPO."
                )
            kwargs["policy_kwargs"] = policy_kwargs
        super().__init__(policy, env, *args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        extractor = getattr(self.policy, "pi_features_extractor", None)
        if isinstance(extractor, ReLICExtractor) and extractor is not self.policy.vf_features_extractor:
            extractor.aux_enabled = False


class ReLICMaskablePPO(_ReLICMixin, MaskablePPO):
    """MaskablePPO with the ReLIC auxiliary loss; the envs must provide ``action_masks()``."""
