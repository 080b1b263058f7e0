"""ReLIC for sb3-contrib algorithms (``pip install "relic-rl[contrib]"``).

* :class:`ReLICRecurrentPPO`: RecurrentPPO pads its minibatch sequences to one length with
  all-zero observations. Those rows are masked out of RecurrentPPO's own losses; here they
  are also kept out of the auxiliary loss (they would add identical all-zero images to the
  contrast set): before each minibatch the extractors get the minibatch's mask as
  :attr:`~relic_rl.extractor.ReLICExtractor.aux_rows`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

from sb3_contrib import RecurrentPPO

from relic_rl.algorithms import _ReLICMixin, relic_extractors
from relic_rl.extractor import ReLICExtractor

__all__ = ["ReLICRecurrentPPO"]


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
    """RecurrentPPO with the ReLIC auxiliary loss (``relic=ReLICConfig(...)``), padded rows
    kept out of it. Use ``"CnnLstmPolicy"`` (or ``"MultiInputLstmPolicy"``)."""

    _relic_policies = ("CnnLstmPolicy", "MultiInputLstmPolicy")
    _nature_net_arch = []

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
