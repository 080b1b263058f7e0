"""sb3-contrib: RecurrentPPO's padded rows stay out of the auxiliary loss."""

from __future__ import annotations

from typing import Any

import pytest
import torch

pytest.importorskip("sb3_contrib")

from relic_rl import ReLICConfig, ReLICExtractor
from relic_rl.contrib import ReLICRecurrentPPO
from tests.helpers import aux_batch_sizes, image_vec_env


def _model(**kwargs: Any) -> ReLICRecurrentPPO:
    # Episodes of 7 steps in rollouts of 16: sequences of several lengths, so minibatches pad.
    return ReLICRecurrentPPO(
        "CnnLstmPolicy",
        image_vec_env(n_envs=2, continuous=True, episode_length=7),
        n_steps=16,
        batch_size=16,
        n_epochs=2,
        seed=0,
        device="cpu",
        **kwargs,
    )


def test_padded_rows_never_enter_the_auxiliary_loss() -> None:
    model = _model(relic=ReLICConfig(augmentation="identity"))
    (extractor,) = {id(e): e for e in model.policy.modules() if isinstance(e, ReLICExtractor)}.values()
    seen: list[tuple[int, int, int]] = []  # (aux rows, real rows, all rows) per aux loss
    original = extractor.aux_loss

    def recording(online: torch.Tensor, target: torch.Tensor) -> Any:
        rows = extractor.aux_rows
        assert rows is not None, "the minibatch mask reaches the extractor"
        seen.append((online.shape[1], int(rows.sum()), rows.numel()))
        return original(online, target)

    extractor.aux_loss = recording  # type: ignore[method-assign]
    model.learn(64)
    assert seen, "the auxiliary loss ran"
    assert all(aux == real for aux, real, _ in seen)
    assert any(real < total for _, real, total in seen), "some minibatch was padded"
    assert extractor.aux_rows is None  # cleared after training
    assert "get" not in vars(model.rollout_buffer)  # the buffer is left as it was


def test_aux_rows_select_the_rows_of_the_auxiliary_loss() -> None:
    # Without aux_rows every row of the batch enters it; with them, only the marked ones.
    model = _model()
    (extractor,) = {id(e): e for e in model.policy.modules() if isinstance(e, ReLICExtractor)}.values()
    obs = torch.rand(6, *model.observation_space.shape)
    extractor.train()
    sizes = aux_batch_sizes(extractor)
    extractor(obs)
    extractor.aux_rows = torch.tensor([True, False, True, True, False, False])
    extractor(obs)
    extractor.aux_rows = None
    assert sizes == [6, 3]


def test_relic_is_only_for_the_image_policies() -> None:
    with pytest.raises(ValueError, match="'CnnLstmPolicy' or 'MultiInputLstmPolicy'"):
        ReLICRecurrentPPO("MlpLstmPolicy", image_vec_env(n_envs=1), relic=ReLICConfig())
