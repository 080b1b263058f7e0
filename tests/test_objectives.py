"""Auxiliary objectives: CURL's loss against a naive reference, the registry, the extractor's use."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from relic_rl import ReLICConfig, ReLICExtractor
from relic_rl.losses import curl_loss
from relic_rl.objectives import (
    OBJECTIVES,
    AuxObjective,
    AuxOutput,
    CURLObjective,
    ReLICObjective,
    register_objective,
)
from tests.helpers import image_vec_env

IMG_SPACE = gym.spaces.Box(0, 255, (3, 40, 40), np.uint8)


def naive_curl(query: torch.Tensor, key: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over ordered view pairs (l != k) and rows i of -log(e^{s_ii} / sum_j e^{s_ij}),
    s_ij = q_li^T W k_kj, written with explicit loops."""
    n_views, n_rows, _ = query.shape
    terms = []
    for a in range(n_views):
        for b in range(n_views):
            if a == b:
                continue
            for i in range(n_rows):
                scores = [query[a, i] @ weight @ key[b, j] for j in range(n_rows)]
                top = max(float(s) for s in scores)  # CURL's max subtraction, for stability
                denominator = sum(torch.exp(s - top) for s in scores)
                terms.append(-(scores[i] - top - torch.log(denominator)))
    return torch.stack(terms).mean()


@pytest.mark.parametrize("n_views", [2, 3])
def test_curl_loss_matches_the_naive_reference_and_its_gradient(n_views: int) -> None:
    gen = torch.Generator().manual_seed(n_views)
    query = torch.randn(n_views, 5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    key = torch.randn(n_views, 5, 4, generator=gen, dtype=torch.float64)
    weight = torch.randn(4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    out = curl_loss(query, key, weight)
    expected = naive_curl(query, key, weight)
    torch.testing.assert_close(out.loss, expected)
    grads = torch.autograd.grad(out.loss, (query, weight))
    expected_grads = torch.autograd.grad(expected, (query, weight))
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)


def test_curl_loss_is_log_batch_for_uninformative_logits_and_small_for_matched_keys() -> None:
    query = torch.zeros(2, 8, 3)
    assert curl_loss(query, query, torch.eye(3)).loss.item() == pytest.approx(math.log(8))
    # Orthogonal, well-separated embeddings with identical views: the positive dominates.
    keys = 20.0 * torch.eye(8).unsqueeze(0).repeat(2, 1, 1)
    out = curl_loss(keys, keys, torch.eye(8))
    assert out.loss.item() < 1e-6 and out.accuracy.item() == 1.0


@pytest.mark.parametrize(
    ("query", "key", "weight", "match"),
    [
        ((2, 4, 3), (2, 4, 2), (3, 3), "same shape|both be"),
        ((4, 3), (4, 3), (3, 3), "both be"),
        ((1, 4, 3), (1, 4, 3), (3, 3), "V >= 2"),
        ((2, 1, 3), (2, 1, 3), (3, 3), "N >= 2"),
        ((2, 4, 3), (2, 4, 3), (3, 2), r"\[3, 3\]"),
    ],
)
def test_curl_loss_rejects_malformed_shapes(
    query: tuple[int, ...], key: tuple[int, ...], weight: tuple[int, ...], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        curl_loss(torch.zeros(query), torch.zeros(key), torch.zeros(weight))


def test_curl_extractor_trains_w_and_the_encoder_by_the_independent_gradient() -> None:
    torch.manual_seed(0)
    config = ReLICConfig(objective="curl", aux_weight=2.0, augmentation="identity")
    extractor = ReLICExtractor(IMG_SPACE, config=config)
    assert isinstance(extractor.objective, CURLObjective)
    with torch.no_grad():  # a W other than the identity, so that W matters in the check
        extractor.objective.weight.add_(0.1 * torch.randn(128, 128))
    obs = torch.rand(6, 3, 40, 40)
    extractor(obs).sum().backward()
    with_aux = [p.grad.clone() for p in extractor.encoder.parameters()]
    w_grad = extractor.objective.weight.grad
    assert w_grad is not None and w_grad.abs().sum() > 0
    extractor.zero_grad(set_to_none=True)
    extractor.aux_enabled = False
    extractor(obs).sum().backward()
    without = [p.grad.clone() for p in extractor.encoder.parameters()]
    extractor.zero_grad(set_to_none=True)
    # Independent: 2 x CURL on two identical (identity) views; keys from the target, which
    # the first update made a copy of the online networks, without gradient.
    assert extractor.critic is not None
    flat = torch.cat([obs, obs])
    query = extractor.critic(extractor.encoder(flat)).view(2, 6, -1)
    loss = 2.0 * naive_curl(query, query.detach(), extractor.objective.weight)
    loss.backward()
    aux_only = [p.grad for p in extractor.encoder.parameters()]
    for total, rl, aux in zip(with_aux, without, aux_only, strict=True):
        torch.testing.assert_close(total, rl + aux, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(w_grad, extractor.objective.weight.grad, atol=1e-6, rtol=1e-4)


def test_curl_metrics_are_the_objective_scalars() -> None:
    extractor = ReLICExtractor(IMG_SPACE, config=ReLICConfig(objective="curl"))
    optimizer = torch.optim.Adam(extractor.parameters())
    extractor(torch.rand(8, 3, 40, 40)).sum().backward()
    optimizer.step()
    metrics = extractor.pop_metrics()
    assert metrics["aux_updates"] == 1
    for name in ("loss", "contrastive", "accuracy", "positive_cosine", "negative_cosine"):
        assert math.isfinite(metrics[name]), name
    assert "invariance" not in metrics  # CURL has no invariance penalty
    assert metrics["loss"] == pytest.approx(metrics["contrastive"])


def test_curl_w_is_in_the_policy_optimizer_and_survives_save_load(tmp_path: Any) -> None:
    kwargs = dict(
        features_extractor_class=ReLICExtractor,
        features_extractor_kwargs=dict(config=ReLICConfig(objective="curl")),
    )
    model = PPO(
        "CnnPolicy",
        image_vec_env(n_envs=2, continuous=True),
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs=kwargs,
    )
    weight = model.policy.features_extractor.objective.weight
    owned = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    assert id(weight) in owned
    before = weight.detach().clone()
    model.learn(total_timesteps=32)
    assert not torch.equal(before, weight.detach())  # the RL optimizer trained W
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", device="cpu")
    torch.testing.assert_close(loaded.policy.features_extractor.objective.weight, weight.detach())


def test_relic_objective_adds_no_state_so_saved_relic_models_load_unchanged() -> None:
    extractor = ReLICExtractor(IMG_SPACE)
    assert isinstance(extractor.objective, ReLICObjective)
    assert not any(key.startswith("objective.") for key in extractor.state_dict())


def test_unknown_objective_is_rejected_with_the_registered_names() -> None:
    with pytest.raises(ValueError, match=r"objective='byol'.*\['curl', 'relic'"):
        ReLICConfig(objective="byol")


def test_objective_is_written_only_when_not_the_default() -> None:
    assert "objective" not in ReLICConfig().to_dict()
    data = ReLICConfig(objective="curl").to_dict()
    assert data["objective"] == "curl"
    assert ReLICConfig.from_dict(data) == ReLICConfig(objective="curl")


@pytest.fixture
def restore_registry() -> Iterator[None]:
    saved = dict(OBJECTIVES)
    yield
    OBJECTIVES.clear()
    OBJECTIVES.update(saved)


@pytest.mark.usefixtures("restore_registry")
def test_a_registered_objective_is_one_class_and_one_decorator() -> None:
    @register_objective("mean-cosine")
    class MeanCosine(AuxObjective):
        def forward(self, online: torch.Tensor, target: torch.Tensor) -> AuxOutput:
            cos = torch.nn.functional.cosine_similarity(online[0], target[1], dim=-1).mean()
            return AuxOutput(-cos, {"cosine": cos.detach()})

    extractor = ReLICExtractor(IMG_SPACE, config=ReLICConfig(objective="mean-cosine"))
    assert isinstance(extractor.objective, MeanCosine) and extractor.objective.dim == 128
    optimizer = torch.optim.SGD(extractor.parameters(), lr=0.0)
    extractor(torch.rand(4, 3, 40, 40)).sum().backward()
    optimizer.step()
    metrics = extractor.pop_metrics()
    assert set(metrics) >= {"loss", "cosine"} and metrics["loss"] == pytest.approx(-metrics["cosine"])


@pytest.mark.usefixtures("restore_registry")
def test_register_objective_rejects_a_taken_name_and_a_non_objective() -> None:
    with pytest.raises(ValueError, match="taken by ReLICObjective"):

        @register_objective("relic")
        class Other(AuxObjective):
            pass

    with pytest.raises(ValueError, match="not a subclass of AuxObjective"):
        register_objective("x")(dict)  # type: ignore[arg-type]
