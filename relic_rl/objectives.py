"""Auxiliary objectives: what the extractor minimises on the critic outputs of augmented views.

An objective maps the online ``g(f(x))`` and target ``g_ema(h(x))`` outputs of ``V`` views of
``N`` observations (``[V, N, D]`` each, the target detached) to an :class:`AuxOutput`; its
parameters (CURL's ``W``) belong to the extractor, so the RL optimizer trains them. ``relic``
(the default) and ``curl`` are registered; an :class:`AuxObjective` subclass decorated with
``@register_objective("byol")`` is then ``ReLICConfig(objective="byol")`` (``relic.objective``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from relic_rl.losses import ReLICLossOutput, check_views, curl_loss, relic_terms

if TYPE_CHECKING:
    from relic_rl.config import ReLICConfig


class AuxOutput(NamedTuple):
    """A differentiable scalar ``loss`` (before ``aux_weight``) and ``scalars`` (floats or detached 0-d
    tensors, averaged over the losses an optimizer step applied and logged as ``relic/<name>``)."""

    loss: torch.Tensor
    scalars: dict[str, torch.Tensor | float]


class AuxObjective(nn.Module):
    """Base class of the objectives, built as ``cls(config, dim)`` (``dim``: the critic's output D);
    subclasses implement ``forward(online, target) -> AuxOutput`` on ``[V, N, D]`` tensors::

        @register_objective("byol")
        class BYOLObjective(AuxObjective):
            def forward(self, online, target) -> AuxOutput: ...
    """

    def __init__(self, config: ReLICConfig, dim: int) -> None:
        super().__init__()
        self.config = config
        self.dim = dim

    def forward(self, online: torch.Tensor, target: torch.Tensor) -> AuxOutput:
        """:param online: [V, N, D], with gradient. :param target: [V, N, D], detached."""
        raise NotImplementedError


#: Registered objectives by name (``ReLICConfig.objective``).
OBJECTIVES: dict[str, type[AuxObjective]] = {}


def register_objective(name: str) -> Callable[[type[AuxObjective]], type[AuxObjective]]:
    """Class decorator registering an :class:`AuxObjective` subclass as ``name`` (ValueError if the name
    is taken or ``cls`` is not an :class:`AuxObjective`)."""

    def register(cls: type[AuxObjective]) -> type[AuxObjective]:
        if not (isinstance(cls, type) and issubclass(cls, AuxObjective)):
            raise ValueError(f"register_objective({name!r}): {cls!r} is not a subclass of AuxObjective.")
        if name in OBJECTIVES and OBJECTIVES[name] is not cls:
            taken = OBJECTIVES[name].__name__
            raise ValueError(f"register_objective: the name {name!r} is taken by {taken}; pick another.")
        OBJECTIVES[name] = cls
        return cls

    return register


def build_objective(config: ReLICConfig, dim: int) -> AuxObjective:
    """The objective ``config.objective`` for critic outputs of size ``dim`` (ValueError if unknown)."""
    if config.objective not in OBJECTIVES:
        raise ValueError(
            f"Unknown auxiliary objective {config.objective!r}; registered: {sorted(OBJECTIVES)}."
        )
    return OBJECTIVES[config.objective](config, dim)


@torch.no_grad()
def cosine_scalars(online: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean cosine of positives (same sample) and negatives (distinct samples), distinct views."""
    n_views = online.shape[0]
    cos = torch.einsum("lid,kjd->lkij", F.normalize(online, dim=-1), F.normalize(target, dim=-1))
    cos = cos[~torch.eye(n_views, dtype=torch.bool, device=cos.device)]  # [P, N, N], pairs l != k
    positives = torch.diagonal(cos, dim1=-2, dim2=-1)
    negative_mean = (cos.sum() - positives.sum()) / (cos.numel() - positives.numel())
    return {"positive_cosine": positives.mean(), "negative_cosine": negative_mean}


def configured_relic_loss(config: ReLICConfig, online: torch.Tensor, target: torch.Tensor) -> ReLICLossOutput:
    """:func:`relic_rl.losses.relic_loss` with ``config``'s hyperparameters (only shapes checked
    here); ``accuracy`` stays a device tensor."""
    check_views(online, target)
    return relic_terms(
        online, target, config.temperature, config.kl_weight, config.normalize, config.divergence, True
    )


@register_objective("relic")
class ReLICObjective(AuxObjective):
    """ReLIC: InfoNCE plus ``kl_weight`` x the invariance penalty (:func:`relic_rl.losses.relic_loss`).
    Scalars: ``contrastive``, ``invariance``, ``accuracy``, ``positive_cosine``, ``negative_cosine``."""

    def forward(self, online: torch.Tensor, target: torch.Tensor) -> AuxOutput:
        return self.summarize(configured_relic_loss(self.config, online, target), online, target)

    @staticmethod
    def summarize(out: ReLICLossOutput, online: torch.Tensor, target: torch.Tensor) -> AuxOutput:
        """The :class:`AuxOutput` of a ReLIC loss computed on ``online`` and ``target``."""
        accuracy = out.accuracy.detach() if isinstance(out.accuracy, torch.Tensor) else out.accuracy
        scalars: dict[str, torch.Tensor | float] = {
            "contrastive": out.contrastive.detach(),
            "invariance": out.invariance.detach(),
            "accuracy": accuracy,
            **cosine_scalars(online.detach(), target),
        }
        return AuxOutput(out.loss, scalars)


@register_objective("curl")
class CURLObjective(AuxObjective):
    """CURL (Laskin et al., 2020): InfoNCE on ``q^T W k`` (``W`` starts as the identity) of online
    queries and target keys of distinct views; no temperature, normalisation or invariance term.
    Scalars: ``contrastive``, ``accuracy``, ``positive_cosine``, ``negative_cosine``."""

    def __init__(self, config: ReLICConfig, dim: int) -> None:
        super().__init__(config, dim)
        self.weight = nn.Parameter(torch.eye(dim))

    def forward(self, online: torch.Tensor, target: torch.Tensor) -> AuxOutput:
        out = curl_loss(online, target, self.weight)
        cosines = cosine_scalars(online.detach(), target)
        return AuxOutput(out.loss, {"contrastive": out.loss.detach(), "accuracy": out.accuracy, **cosines})
