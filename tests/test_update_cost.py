"""The cheaper ReLIC update: per-view passes, device-side metrics, and the opt-in speed options.

``aux_batch_size``, ``aux_every`` and ``target_precision`` change what is computed and are
off by default; the default update computes exactly the objective it did before (the
gradient tests in ``test_extractor.py`` check it against an independent computation).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from relic_rl import ReLICConfig, ReLICExtractor
from relic_rl.losses import ReLICLossOutput

IMG_SPACE = gym.spaces.Box(0, 255, (2, 40, 40), np.uint8)


def _extractor(**config: Any) -> ReLICExtractor:
    torch.manual_seed(0)
    extractor = ReLICExtractor(IMG_SPACE, config=ReLICConfig(**config))
    return extractor.train()


def _images(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, *IMG_SPACE.shape, generator=torch.Generator().manual_seed(seed))


def _update(extractor: ReLICExtractor, optimizer: torch.optim.Optimizer, images: torch.Tensor) -> None:
    optimizer.zero_grad()
    extractor(images).pow(2).mean().backward()
    optimizer.step()


def _capture_losses(extractor: ReLICExtractor) -> list[tuple[torch.Size, torch.dtype]]:
    """Record (online shape, target dtype) of every auxiliary loss the extractor computes."""
    seen: list[tuple[torch.Size, torch.dtype]] = []
    original = extractor.relic_loss

    def hook(online: torch.Tensor, target: torch.Tensor) -> ReLICLossOutput:
        seen.append((online.shape, target.dtype))
        return original(online, target)

    extractor.relic_loss = hook  # type: ignore[method-assign]
    return seen


def test_update_does_not_synchronise_with_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a GPU, reading a tensor on the host (item(), float(), bool()) waits for every queued
    # kernel. After the first update (which copies f into h once), an update reads nothing.
    extractor = _extractor()
    # SGD: Adam itself reads its step counter on the host.
    optimizer = torch.optim.SGD(extractor.parameters(), lr=1e-3)
    _update(extractor, optimizer, _images(8))

    def forbidden(self: torch.Tensor, *args: Any) -> Any:
        raise AssertionError("host synchronisation during an update")

    for name in ("item", "__float__", "__bool__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    for step in range(3):
        _update(extractor, optimizer, _images(8, seed=step))
    monkeypatch.undo()
    metrics = extractor.pop_metrics()
    assert metrics["aux_updates"] == 4 and metrics["ema_updates"] == 4
    assert all(isinstance(value, float) for value in metrics.values())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and np.isfinite(metrics["loss"])


def test_metrics_average_what_the_loss_returned() -> None:
    extractor = _extractor()
    losses: list[float] = []
    original = extractor.relic_loss

    def hook(online: torch.Tensor, target: torch.Tensor) -> ReLICLossOutput:
        out = original(online, target)
        losses.append(float(out.loss))
        return out

    extractor.relic_loss = hook  # type: ignore[method-assign]
    optimizer = torch.optim.SGD(extractor.parameters(), lr=1e-2)
    for step in range(3):
        _update(extractor, optimizer, _images(8, seed=step))
    assert extractor.pop_metrics()["loss"] == pytest.approx(sum(losses) / 3, rel=1e-6)


def test_aux_batch_size_uses_the_first_samples_of_the_minibatch() -> None:
    extractor = _extractor(aux_batch_size=4)
    seen = _capture_losses(extractor)
    features = extractor(_images(10))
    assert features.shape == (10, extractor.features_dim)  # the RL features cover the whole batch
    assert seen == [(torch.Size([2, 4, extractor.config.projection_dim]), torch.float32)]
    # A minibatch smaller than aux_batch_size uses all of it.
    extractor(_images(3))
    assert seen[-1][0] == torch.Size([2, 3, extractor.config.projection_dim])


def test_aux_batch_size_loss_equals_the_loss_on_that_subset() -> None:
    subset, full = _extractor(aux_batch_size=4), _extractor()
    full.load_state_dict(subset.state_dict())
    images = _images(9)
    subset_losses, full_losses = [], []
    for extractor, out in ((subset, subset_losses), (full, full_losses)):
        original = extractor.relic_loss

        def hook(online: torch.Tensor, target: torch.Tensor, original: Any = original, out: Any = out) -> Any:
            result = original(online, target)
            out.append(result.loss.detach())
            return result

        extractor.relic_loss = hook  # type: ignore[method-assign]
    torch.manual_seed(5)
    subset(images)
    torch.manual_seed(5)
    full(images[:4])  # the same augmentation draws on the same 4 samples
    assert torch.allclose(subset_losses[0], full_losses[0], rtol=1e-5, atol=1e-6)


def test_aux_every_computes_the_loss_on_every_kth_update_pass() -> None:
    extractor = _extractor(aux_every=3)
    seen = _capture_losses(extractor)
    optimizer = torch.optim.Adam(extractor.parameters(), lr=1e-3)
    for step in range(7):
        _update(extractor, optimizer, _images(6, seed=step))
    assert len(seen) == 3  # passes 1, 4 and 7
    metrics = extractor.pop_metrics()
    assert metrics["aux_updates"] == 3
    assert metrics["ema_updates"] == 7  # the encoder is still trained (by the RL loss) every step


def test_bfloat16_target_passes_feed_a_float32_loss() -> None:
    exact, fast = _extractor(), _extractor(target_precision="bfloat16")
    fast.load_state_dict(exact.state_dict())
    dtypes: list[torch.dtype] = []
    assert fast.target_encoder is not None
    fast.target_encoder.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    seen = _capture_losses(fast)
    images = _images(16)
    results = []
    for extractor in (exact, fast):
        torch.manual_seed(1)
        out = extractor(images)
        out.sum().backward()
        torch.optim.SGD(extractor.parameters(), lr=0.0).step()  # metrics count applied losses
        results.append(extractor.pop_metrics()["loss"])
    assert set(dtypes) == {torch.bfloat16} and seen[0][1] == torch.float32
    assert results[1] == pytest.approx(results[0], rel=2e-2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("aux_batch_size", 1),
        ("aux_batch_size", 2.5),
        ("aux_batch_size", True),
        ("aux_every", 0),
        ("aux_every", 1.0),
        ("target_precision", "float16"),
        ("target_precision", None),
    ],
)
def test_speed_options_are_validated(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"ReLICConfig\.{field}=.* is invalid: expected"):
        ReLICConfig(**{field: value})


def test_speed_options_are_off_by_default() -> None:
    config = ReLICConfig()
    assert (config.aux_batch_size, config.aux_every, config.target_precision) == (None, 1, "float32")
    assert ReLICConfig.from_dict(config.to_dict()) == config


def test_only_losses_that_reach_an_optimizer_step_are_counted() -> None:
    extractor = _extractor()
    optimizer = torch.optim.SGD(extractor.parameters(), lr=1e-3)
    _update(extractor, optimizer, _images(8))  # applied
    extractor(_images(8, seed=1)).sum()  # computed, then dropped (e.g. PPO's target_kl stop)
    _update(extractor, optimizer, _images(8, seed=2))  # applied
    other = torch.optim.SGD(extractor.critic.parameters(), lr=1e-3)  # type: ignore[union-attr]
    other.zero_grad()
    extractor(_images(8, seed=3)).sum().backward()
    other.step()  # an optimizer without the encoder (e.g. an actor's): not applied to it
    metrics = extractor.pop_metrics()
    assert (metrics["aux_updates"], metrics["aux_dropped"], metrics["ema_updates"]) == (2, 2, 2)


def test_ppo_target_kl_stop_does_not_count_the_stopped_loss() -> None:
    from stable_baselines3 import PPO

    from tests.helpers import image_vec_env

    model = PPO(
        "CnnPolicy",
        image_vec_env(n_envs=2),
        n_steps=16,
        batch_size=8,
        n_epochs=1,
        target_kl=1e-12,  # the first minibatch trains (KL 0), the second one stops the epoch
        seed=0,
        policy_kwargs=dict(features_extractor_class=ReLICExtractor),
    )
    model.learn(32)
    metrics = model.policy.features_extractor.pop_metrics()
    assert metrics["aux_updates"] == metrics["ema_updates"] == 1
    assert metrics["aux_dropped"] == 1
