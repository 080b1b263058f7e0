"""Auxiliary objectives: what the extractor minimises on the critic outputs of augmented views.

An objective is an ``nn.Module`` that takes the online critic outputs ``g(f(x))`` and the
target ones ``g_ema(h(x))`` of ``V`` augmented views of the same ``N`` observations (each
``[V, N, D]``, the target without gradient) and returns an :class:`AuxOutput`: the loss to
add (before ``aux_weight``) and the named scalars to log as ``relic/<name>``. Its parameters
(CURL's bilinear ``W``) belong to the extractor, so the RL optimizer trains them.

Two are registered: ``relic`` (:class:`ReLICObjective`, the default) and ``curl``
(:class:`CURLObjective`). A third is one class plus :func:`register_objective`::

    @register_objective("byol")
    class BYOLObjective(AuxObjective):
        def __init__(self, config: ReLICConfig, dim: int) -> None: ...
        def forward(self, online, target) -> AuxOutput: ...

after which ``ReLICConfig(objective="byol")`` (``relic.objective: byol`` in a preset or
``--hyperparams relic.objective=byol``) trains with it.
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
    """Result of an :class:`AuxObjective`.

    :param loss: scalar tensor, differentiable; the extractor scales it by ``aux_weight``.
    :param scalars: named values to log (floats or 0-d tensors, detached), averaged over the
        losses an optimizer step applied and recorded as ``relic/<name>``.
    """

    loss: torch.Tensor
    scalars: dict[str, torch.Tensor | float]


class AuxObjective(nn.Module):
    """Base class of the auxiliary objectives.

    Subclasses are built as ``cls(config, dim)`` (``dim``: the critic's output size, D) and
    implement ``forward(online, target) -> AuxOutput`` on ``[V, N, D]`` tensors.
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
    """Class decorator: make ``cls`` the objective called ``name``.

    :raises ValueError: when ``name`` is taken or ``cls`` is not an :class:`AuxObjective`.
    """

    def register(cls: type[AuxObjective]) -> type[AuxObjective]:
        if not (isinstance(cls, type) and issubclass(cls, AuxObjective)):
            raise ValueError(f"register_objective({name!r}): {cls!r} is not a subclass of AuxObjective.")
        if name in OBJECTIVES and OBJECTIVES[name] is not cls:
            raise ValueError(
                f"register_objective: the name {name!r} is taken by {OBJECTIVES[name].__name__}; "
                "pick another."
            )
        OBJECTIVES[name] = cls
        return cls

    return register


def build_objective(config: ReLICConfig, dim: int) -> AuxObjective:
    """The objective ``config.objective`` for critic outputs of size ``dim``."""
    try:
        cls = OBJECTIVES[config.objective]
    except KeyError:
        raise ValueError(
            f"Unknown auxiliary objective {config.objective!r}; registered: {sorted(OBJECTIVES)}."
        ) from None
    return cls(config, dim)


@torch.no_grad()
def cosine_scalars(online: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean cosine similarity of positives (same sample, distinct views) and of negatives
    (distinct samples, distinct views) between ``online`` and ``target`` ([V, N, D] each)."""
    n_views = online.shape[0]
    cos = torch.einsum("lid,kjd->lkij", F.normalize(online, dim=-1), F.normalize(target, dim=-1))
    cos = cos[~torch.eye(n_views, dtype=torch.bool, device=cos.device)]  # [P, N, N], pairs l != k
    positives = torch.diagonal(cos, dim1=-2, dim2=-1)
    negative_mean = (cos.sum() - positives.sum()) / (cos.numel() - positives.numel())
    return {"positive_cosine": positives.mean(), "negative_cosine": negative_mean}


def configured_relic_loss(config: ReLICConfig, online: torch.Tensor, target: torch.Tensor) -> ReLICLossOutput:
    """:func:`relic_rl.losses.relic_loss` on ``[V, N, D]`` critic outputs with ``config``'s
    hyperparameters; ``accuracy`` stays a tensor on the device (read when metrics are logged).

    The config validated its values when it was made, so only the views' shapes are checked here.
    """
    check_views(online, target)
    return relic_terms(
        online, target, config.temperature, config.kl_weight, config.normalize, config.divergence, True
    )


@register_objective("relic")
class ReLICObjective(AuxObjective):
    """ReLIC: InfoNCE plus ``kl_weight`` x the invariance penalty (:func:`relic_rl.losses.relic_loss`).

    Uses the config's ``temperature``, ``kl_weight``, ``normalize`` and ``divergence``.
    Scalars: ``contrastive``, ``invariance``, ``accuracy``, ``positive_cosine``, ``negative_cosine``.
    """

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
    """CURL (Laskin et al., 2020): InfoNCE over the batch with the bilinear similarity
    ``q^T W k`` between online queries and EMA-target keys, ``W`` learned.

    Every ordered pair of distinct views is a (query, key) pair, as in ReLIC's contrast sets.
    ``W`` starts as the identity, so the first logits are the dot products of the critic
    outputs. As in CURL there is no temperature, no normalisation and no invariance penalty:
    the config's ``temperature``, ``kl_weight``, ``normalize`` and ``divergence`` are not used.
    Scalars: ``contrastive``, ``accuracy``, ``positive_cosine``, ``negative_cosine``.
    """

    def __init__(self, config: ReLICConfig, dim: int) -> None:
        super().__init__(config, dim)
        self.weight = nn.Parameter(torch.eye(dim))

    def forward(self, online: torch.Tensor, target: torch.Tensor) -> AuxOutput:
        out = curl_loss(online, target, self.weight)
        scalars: dict[str, torch.Tensor | float] = {
            "contrastive": out.loss.detach(),
            "accuracy": out.accuracy,
            **cosine_scalars(online.detach(), target),
        }
        return AuxOutput(out.loss, scalars)
