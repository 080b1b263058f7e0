"""Tests for relic_rl.augmentations: batched image augmentations and the spec parser."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from relic_rl import augmentations as aug_module
from relic_rl.augmentations import (
    AUGMENTATION_ALIASES,
    AUGMENTATIONS,
    Augmentation,
    ColorJitter,
    Compose,
    Cutout,
    Grayscale,
    Identity,
    Intensity,
    RandomCrop,
    RandomShift,
    make_augmentation,
    register_augmentation,
    shift_images,
)

# Factories rather than instances, so that every test gets a fresh module.
_CHOSEN: dict[str, Callable[[], Augmentation]] = {
    "shift": lambda: RandomShift(4),
    "crop_pad": lambda: RandomCrop(pad=4),
    "crop_size": lambda: RandomCrop(size=32),
    "intensity": lambda: Intensity(0.1),
    "jitter": lambda: ColorJitter(0.4, 0.4, 0.4, 0.1),
    "grayscale": lambda: Grayscale(0.5),
    "cutout": lambda: Cutout(0.5),
    "identity": Identity,
    "compose": lambda: make_augmentation("shift,intensity"),
    "compose_all": lambda: make_augmentation("crop,jitter(0.4,0.4,0.4,0.1),gray(0.5),cutout,shift"),
    # Steps that return their input first: the later in-place steps must still not touch it.
    "compose_noop_first": lambda: make_augmentation("none,shift(0),intensity,cutout"),
}
# Every other registered augmentation with its defaults, so that a new one is covered by the
# contract tests below as soon as it is registered.
FACTORIES = {**_CHOSEN, **{name: cls for name, cls in AUGMENTATIONS.items() if name not in _CHOSEN}}
RANDOM = [name for name in FACTORIES if name != "identity"]
SHAPES = [(8, 2, 64, 64), (4, 12, 84, 84), (5, 3, 40, 40)]
SHAPE_IDS = ["gray2x64", "rgb4x84", "rgb1x40"]


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(shape: tuple[int, ...], dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    """Random images in [0, 1] that include exact 0s and 1s, so range violations show up."""
    x = torch.rand(shape, generator=seeded(seed), dtype=dtype)
    x[..., 0, 0] = 0.0
    x[..., -1, -1] = 1.0
    return x


def frame_stack(batch: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """[B, C, S, S] where every frame of a sample is the same (different frames per sample)."""
    k = 3 if channels % 3 == 0 else 1
    frame = images((batch, k, size, size), seed=seed)
    return frame.repeat(1, channels // k, 1, 1)


def is_random_for(name: str, channels: int) -> bool:
    """Whether the augmentation changes images of this channel count at all."""
    return name != "identity" and not (name == "grayscale" and channels % 3 != 0)


@pytest.fixture(params=[False, True], ids=["torch_alloc", "hugepage_buffers"])
def buffers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run a test with and without the NumPy huge-page output buffers (forced for small inputs)."""
    if request.param:
        monkeypatch.setattr(aug_module, "_HUGE_PAGE_MIN_BYTES", 0)
    return bool(request.param)


# ----------------------------------------------------------------------------- generic properties


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", FACTORIES)
def test_shape_dtype_range_and_input_untouched(
    name: str, shape: tuple[int, int, int, int], dtype: torch.dtype, buffers: bool
) -> None:
    x = images(shape, dtype)
    before = x.clone()
    out = FACTORIES[name]()(x, generator=seeded())
    assert out.shape == x.shape
    assert out.dtype == dtype
    assert out.device == x.device
    assert torch.equal(x, before), "the input was modified in place"
    assert out.min() >= 0.0 and out.max() <= 1.0
    if name != "identity":
        assert out.data_ptr() != x.data_ptr(), "must return a new tensor"


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", FACTORIES)
def test_parameters_differ_per_sample(name: str, shape: tuple[int, int, int, int]) -> None:
    batch, channels, height, width = shape
    x = images((1, channels, height, width)).expand(batch, -1, -1, -1).contiguous()
    out = FACTORIES[name]()(x, generator=seeded(1))
    all_same = all(torch.equal(out[0], out[i]) for i in range(1, batch))
    assert all_same != is_random_for(name, channels)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", FACTORIES)
def test_frame_stack_stays_aligned(name: str, shape: tuple[int, int, int, int], buffers: bool) -> None:
    batch, channels, height, _ = shape
    x = frame_stack(batch, channels, height)
    out = FACTORIES[name]()(x, generator=seeded())
    k = 3 if channels % 3 == 0 else 1
    groups = out.view(batch, channels // k, k, height, height)
    for f in range(1, channels // k):
        assert torch.equal(groups[:, f], groups[:, 0]), f"frame {f} differs from frame 0"


@pytest.mark.parametrize("name", RANDOM)
def test_generator_reproducibility(name: str) -> None:
    x = images((6, 12, 40, 40))
    module = FACTORIES[name]()
    first = module(x, generator=seeded(3))
    assert torch.equal(first, module(x, generator=seeded(3)))
    assert not torch.equal(first, module(x, generator=seeded(4)))
    # Without a generator the global RNG is used, so torch.manual_seed reproduces it.
    torch.manual_seed(5)
    global_first = module(x)
    torch.manual_seed(5)
    assert torch.equal(global_first, module(x))


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda: [[0.0]], "expected a torch.Tensor"),
        (lambda: torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "floating image tensor"),
        (lambda: torch.zeros(3, 8, 8), "4-D tensor"),
        (lambda: torch.zeros(1, 2, 3, 8, 8), "4-D tensor"),
    ],
    ids=["list", "uint8", "3d", "5d"],
)
def test_rejects_non_image_input(name: str, bad: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FACTORIES[name]()(bad())


@pytest.mark.parametrize("name", FACTORIES)
def test_runs_on_input_device_meta(name: str) -> None:
    # A GPU-free stand-in for "no CPU tensors when the input is on CUDA": elementwise ops
    # that mix a CPU tensor into a meta tensor raise, so this catches most stray devices.
    x = torch.empty(4, 12, 40, 40, device="meta")
    out = FACTORIES[name]()(x)
    assert out.device.type == "meta" and out.shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", FACTORIES)
def test_cuda_matches_device_and_is_reproducible(name: str) -> None:
    x = images((4, 12, 40, 40)).cuda()
    module = FACTORIES[name]()
    first = module(x, generator=torch.Generator(device="cuda").manual_seed(0))
    assert first.device == x.device
    assert torch.equal(first, module(x, generator=torch.Generator(device="cuda").manual_seed(0)))
    if name != "identity":
        with pytest.raises(ValueError, match="generator is on cpu"):
            module(x, generator=seeded())


@pytest.mark.parametrize("name", RANDOM)
def test_hugepage_buffers_do_not_change_results(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    x = images((4, 12, 40, 40))
    calls: list[int] = []
    real = aug_module._output_buffer

    def spy(like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor | None:
        out = real(like, shape)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(aug_module, "_output_buffer", spy)
    monkeypatch.setattr(aug_module, "_HUGE_PAGE_MIN_BYTES", 1 << 62)
    plain = FACTORIES[name]()(x, generator=seeded())
    assert not any(calls)
    monkeypatch.setattr(aug_module, "_HUGE_PAGE_MIN_BYTES", 0)
    buffered = FACTORIES[name]()(x, generator=seeded())
    assert any(calls), "the buffer path was not taken"
    assert torch.equal(plain, buffered)


def test_hugepage_buffer_used_for_large_batches_only() -> None:
    like = torch.empty(0)
    assert aug_module._output_buffer(like, (256, 6, 84, 84)) is not None
    assert aug_module._output_buffer(like, (8, 2, 64, 64)) is None
    assert aug_module._output_buffer(torch.empty(0, dtype=torch.bfloat16), (256, 6, 84, 84)) is None
    assert aug_module._output_buffer(torch.empty(0, requires_grad=True), (256, 6, 84, 84)) is None


# ----------------------------------------------------------------------------- RandomShift


def naive_shift(x: torch.Tensor, shift_y: torch.Tensor, shift_x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reference: replicate-pad, then crop each sample at its own offset in a Python loop."""
    _, _, height, width = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    crops = []
    for b in range(x.shape[0]):
        top, left = pad + int(shift_y[b]), pad + int(shift_x[b])
        crops.append(padded[b, :, top : top + height, left : left + width])
    return torch.stack(crops)


def test_shift_images_matches_naive_loop() -> None:
    x = images((16, 6, 21, 17))
    gen = seeded(2)
    shift_y = torch.randint(-5, 6, (16,), generator=gen)
    shift_x = torch.randint(-5, 6, (16,), generator=gen)
    shift_y[0], shift_x[0] = -5, 5  # make sure the extremes are covered
    assert torch.equal(shift_images(x, shift_y, shift_x), naive_shift(x, shift_y, shift_x, pad=5))


def test_shift_images_rejects_bad_shift_shape() -> None:
    with pytest.raises(ValueError, match=r"shifts must have shape \[B\] = \[2\]"):
        shift_images(
            torch.zeros(2, 1, 4, 4), torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.long)
        )


def test_random_shift_is_an_integer_translation_covering_all_offsets() -> None:
    pad, batch = 2, 400
    x = images((batch, 2, 7, 7))
    out = RandomShift(pad)(x, generator=seeded())
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    offsets = list(itertools.product(range(2 * pad + 1), repeat=2))
    # [O, B, C, H, W]: every candidate crop of every sample.
    candidates = torch.stack([padded[:, :, t : t + 7, left : left + 7] for t, left in offsets])
    matches = (candidates == out.unsqueeze(0)).flatten(2).all(dim=2)  # [O, B]
    assert matches.any(dim=0).all(), "some output is not a crop of the padded input"
    hit = {offsets[o] for o in matches.float().argmax(dim=0).tolist()}
    assert hit == set(offsets), f"offsets never drawn: {set(offsets) - hit}"


def test_shift_pad_zero_is_identity() -> None:
    x = images((4, 12, 20, 20))
    out = RandomShift(0)(x, generator=seeded())
    assert torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()


# ----------------------------------------------------------------------------- RandomCrop


@pytest.mark.parametrize(
    ("size", "pad", "window"), [(None, 4, (32, 32)), (24, 4, (24, 24)), (60, 4, (40, 40))]
)
def test_crop_window(size: int | None, pad: int, window: tuple[int, int]) -> None:
    assert RandomCrop(size, pad).window(40, 40) == window


@pytest.mark.parametrize(("size", "pad"), [(None, 4), (30, 0)])
def test_crop_is_a_resized_window_of_the_input(size: int | None, pad: int) -> None:
    x = images((5, 3, 40, 40))
    module = RandomCrop(size, pad)
    out = module(x, generator=seeded())
    h, w = module.window(40, 40)
    for b in range(5):
        found = any(
            torch.allclose(
                F.interpolate(x[b : b + 1, :, t : t + h, s : s + w], size=(40, 40), mode="bilinear"),
                out[b : b + 1],
                atol=1e-6,
            )
            for t in range(40 - h + 1)
            for s in range(40 - w + 1)
        )
        assert found, f"sample {b} is not a resized {h}x{w} window"


def test_crop_not_smaller_than_frame_is_identity() -> None:
    x = images((4, 3, 40, 40))
    assert torch.equal(RandomCrop(84)(x), x)


def test_crop_pad_too_large_for_frame() -> None:
    with pytest.raises(ValueError, match=r"pad=20 leaves no window in 40x40 frames"):
        RandomCrop(pad=20)(images((2, 3, 40, 40)))


# ----------------------------------------------------------------------------- photometric


def test_intensity_scales_each_sample_by_one_bounded_factor() -> None:
    x = images((64, 4, 8, 8)) * 0.5 + 0.1  # no clamping for factors up to 1.2 ... 2 sigma
    out = Intensity(0.1)(x, generator=seeded())
    ratio = out / x  # [B, C, H, W]
    per_sample = ratio.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample), atol=1e-5)
    factors = per_sample[:, 0]
    assert factors.min() >= 0.8 - 1e-6 and factors.max() <= 1.2 + 1e-6
    assert factors.std() > 0.03


def test_intensity_clamps_to_one() -> None:
    x = torch.ones(64, 1, 4, 4)
    out = Intensity(0.5)(x, generator=seeded())
    assert out.max() == 1.0 and out.min() < 1.0


def test_jitter_with_zero_strength_is_identity() -> None:
    x = images((4, 12, 20, 20))
    assert torch.equal(ColorJitter(0.0, 0.0, 0.0, 0.0)(x, generator=seeded()), x)


def test_jitter_on_gray_stack_ignores_saturation_and_hue() -> None:
    x = images((4, 2, 20, 20))
    assert torch.equal(ColorJitter(0.0, 0.0, 0.9, 0.5)(x, generator=seeded()), x)


def test_jitter_contrast_keeps_frame_means() -> None:
    x = images((16, 2, 20, 20)) * 0.5 + 0.25  # contrast factors <= 1.4 then stay inside [0, 1]
    out = ColorJitter(0.0, 0.4, 0.0, 0.0)(x, generator=seeded())
    assert torch.allclose(out.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-5)
    spread = out.std(dim=(2, 3)) / x.std(dim=(2, 3))  # [B, F] = contrast factor
    assert torch.allclose(spread[:, 0], spread[:, 1], atol=1e-4)
    assert spread.min() >= 0.6 - 1e-4 and spread.max() <= 1.4 + 1e-4 and spread.std() > 0.05


def test_jitter_saturation_clamps_vivid_colours() -> None:
    x = torch.zeros(16, 3, 8, 8)
    x[:, 0] = 0.95  # saturated red: raising saturation pushes red above 1 and blue below 0
    x[:, 2] = 0.05
    out = ColorJitter(0.0, 0.0, 1.0, 0.0)(x, generator=seeded())
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.equal(out, x)


def test_jitter_contrast_blends_rgb_with_mean_luma() -> None:
    # Colour channels with different means: per-channel means would give another result.
    x = images((8, 6, 16, 16)) * 0.3 + torch.tensor([0.45, 0.35, 0.25] * 2).view(1, 6, 1, 1)
    out = ColorJitter(0.0, 0.4, 0.0, 0.0)(x, generator=seeded())
    frames, out_frames = x.view(8, 2, 3, 16, 16), out.view(8, 2, 3, 16, 16)
    factor = out_frames.std(dim=(2, 3, 4), keepdim=True) / frames.std(dim=(2, 3, 4), keepdim=True)
    luma = 0.299 * frames[:, :, 0] + 0.587 * frames[:, :, 1] + 0.114 * frames[:, :, 2]
    mean = luma.mean(dim=(2, 3)).view(8, 2, 1, 1, 1)
    assert torch.allclose(out_frames, mean + factor * (frames - mean), atol=1e-5)


def test_jitter_hue_keeps_gray_pixels_and_luma() -> None:
    gray = images((8, 1, 10, 10)).repeat(1, 3, 1, 1)
    assert torch.allclose(ColorJitter(0.0, 0.0, 0.0, 0.5)(gray, generator=seeded()), gray, atol=1e-5)
    colour = images((8, 3, 10, 10)) * 0.2 + 0.4  # small hue turns keep these inside [0, 1]
    out = ColorJitter(0.0, 0.0, 0.0, 0.05)(colour, generator=seeded())
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose((out * weights).sum(1), (colour * weights).sum(1), atol=1e-5)
    assert not torch.allclose(out, colour, atol=1e-3)


def test_grayscale_probability_one_and_zero() -> None:
    x = images((4, 6, 10, 10))
    out = Grayscale(1.0)(x, generator=seeded())
    frames = out.view(4, 2, 3, 10, 10)
    assert torch.equal(frames[:, :, 0], frames[:, :, 1]) and torch.equal(frames[:, :, 1], frames[:, :, 2])
    luma = 0.299 * x[:, 0::3] + 0.587 * x[:, 1::3] + 0.114 * x[:, 2::3]
    assert torch.allclose(frames[:, :, 0], luma, atol=1e-6)
    assert torch.equal(Grayscale(0.0)(x, generator=seeded()), x)


def test_grayscale_leaves_gray_stacks_unchanged() -> None:
    x = images((4, 4, 10, 10))
    out = Grayscale(1.0)(x)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


def test_cutout_erases_one_rectangle_per_sample() -> None:
    x = images((32, 6, 40, 40)) * 0.9 + 0.1  # strictly positive, so zeros mark erased pixels
    out = Cutout(1.0, scale=(0.02, 0.2), value=0.0)(x, generator=seeded())
    erased = out == 0  # [B, C, H, W]
    assert torch.equal(erased, erased[:, :1].expand_as(erased)), "rectangles differ between channels"
    assert torch.equal(out[~erased], x[~erased])
    for mask in erased[:, 0]:
        rows, cols = mask.any(dim=1), mask.any(dim=0)
        assert torch.equal(mask, rows[:, None] & cols[None, :]), "erased region is not a rectangle"
        r, c = rows.nonzero().flatten(), cols.nonzero().flatten()
        assert r.numel() == int(r[-1] - r[0]) + 1 and c.numel() == int(c[-1] - c[0]) + 1
        assert 0.5 * 0.02 <= mask.float().mean() <= 1.5 * 0.2
    assert torch.equal(Cutout(0.0)(x, generator=seeded()), x)


# ----------------------------------------------------------------------------- Compose


class Halve(nn.Module):
    """A foreign step: not an Augmentation, but accepts the generator keyword."""

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return x * 0.5


def test_compose_applies_in_order_and_shares_the_generator() -> None:
    x = images((8, 6, 20, 20))
    steps: list[nn.Module] = [RandomShift(4), Intensity(0.1), Halve(), Cutout(1.0), ColorJitter()]
    out = Compose(steps)(x, generator=seeded(7))
    gen = seeded(7)
    expected = x
    for step in steps:
        expected = step(expected, generator=gen)
    assert torch.equal(out, expected)
    assert torch.equal(Compose([])(x), x)


def test_compose_gradients_match_step_by_step() -> None:
    # Compose may run later steps in place; gradients must equal those of separate calls.
    x = images((4, 6, 20, 20)).requires_grad_()
    weights = torch.rand(4, 6, 20, 20, generator=seeded(1))
    pipeline = make_augmentation("crop,shift,intensity,jitter(0.4,0.4,0.4,0.1),cutout(1)")
    (pipeline(x, generator=seeded()) * weights).sum().backward()
    assert x.grad is not None
    composed_grad, x.grad = x.grad, None
    gen, y = seeded(), x
    for step in pipeline:
        y = step(y, generator=gen)
    (y * weights).sum().backward()
    assert x.grad is not None and composed_grad.abs().sum() > 0
    assert torch.allclose(composed_grad, x.grad)


def test_compose_validates_its_argument() -> None:
    with pytest.raises(ValueError, match="expected a sequence of modules"):
        Compose(RandomShift())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="element 1 is a int"):
        Compose([RandomShift(), 1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="Halve has no spec string"):
        _ = Compose([Halve()]).spec


def test_reprs() -> None:
    assert repr(RandomShift(8)) == "RandomShift(pad=8)"
    assert repr(RandomCrop(84)) == "RandomCrop(size=84, pad=4)"
    assert repr(Cutout()) == "Cutout(p=0.5, min_scale=0.02, max_scale=0.2, value=0.0)"
    assert "spec='shift(4),intensity(0.1)'" in repr(make_augmentation("shift,intensity"))


# ----------------------------------------------------------------------------- constructors


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RandomShift(-1), r"`pad` must be an integer >= 0, got -1"),
        (lambda: RandomShift(1.5), r"`pad` must be an integer >= 0, got 1.5"),  # type: ignore[arg-type]
        (lambda: RandomShift(True), r"`pad` must be an integer"),
        (lambda: RandomCrop(size=0), r"`size` must be an integer >= 1"),
        (lambda: RandomCrop(pad=-2), r"`pad` must be an integer >= 0"),
        (lambda: Intensity(-0.1), r"`scale` must be a finite number in \[0.0, 0.5\]"),
        (lambda: Intensity(float("nan")), r"`scale` must be a finite number"),
        (lambda: ColorJitter(brightness=-1), r"`brightness` must be a finite number >= 0.0"),
        (lambda: ColorJitter(hue=0.6), r"`hue` must be a finite number in \[0.0, 0.5\]"),
        (lambda: Grayscale(1.5), r"`p` must be a finite number in \[0.0, 1.0\]"),
        (lambda: Cutout(scale=(0.3, 0.1)), r"0 < min <= max <= 1"),
        (lambda: Cutout(scale=(0.0, 0.1)), r"0 < min <= max <= 1"),
        (lambda: Cutout(scale=(0.1,)), r"`scale` must be a pair"),  # type: ignore[arg-type]
        (lambda: Cutout(value=2.0), r"`value` must be a finite number in \[0.0, 1.0\]"),
    ],
)
def test_constructors_validate(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# ----------------------------------------------------------------------------- spec parsing


def test_registry_lists_every_augmentation() -> None:
    expected = {
        "shift": RandomShift,
        "crop": RandomCrop,
        "intensity": Intensity,
        "jitter": ColorJitter,
        "grayscale": Grayscale,
        "cutout": Cutout,
        "identity": Identity,
    }
    assert expected == AUGMENTATIONS
    assert set(AUGMENTATION_ALIASES.values()) <= set(AUGMENTATIONS)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("shift", [(RandomShift, {"pad": 4})]),
        ("shift(8)", [(RandomShift, {"pad": 8})]),
        ("shift(pad=0)", [(RandomShift, {"pad": 0})]),
        ("crop(84)", [(RandomCrop, {"size": 84, "pad": 4})]),
        ("crop", [(RandomCrop, {"size": None, "pad": 4})]),
        ("crop(pad=2)", [(RandomCrop, {"size": None, "pad": 2})]),
        ("shift,intensity", [(RandomShift, {"pad": 4}), (Intensity, {"scale": 0.1})]),
        (
            "crop(84),jitter(0.4)",
            [(RandomCrop, {"size": 84}), (ColorJitter, {"brightness": 0.4, "contrast": 0.4, "hue": 0.0})],
        ),
        (
            "color_jitter(0.1, 0.2, .3, 5e-2)",
            [(ColorJitter, {"brightness": 0.1, "saturation": 0.3, "hue": 0.05})],
        ),
        ("Gray(0.3)", [(Grayscale, {"p": 0.3})]),
        ("grayscale()", [(Grayscale, {"p": 0.2})]),
        ("erase(1, 0.1, 0.3, 0.5)", [(Cutout, {"p": 1.0, "scale": (0.1, 0.3), "value": 0.5})]),
        ("cutout(value=1)", [(Cutout, {"p": 0.5, "scale": (0.02, 0.2), "value": 1.0})]),
        ("none", [(Identity, {})]),
        ("identity", [(Identity, {})]),
        (" shift ( 2 ) ,\tintensity( 0.05 ) ", [(RandomShift, {"pad": 2}), (Intensity, {"scale": 0.05})]),
    ],
)
def test_make_augmentation_builds_expected_modules(
    spec: str, expected: list[tuple[type, dict[str, object]]]
) -> None:
    pipeline = make_augmentation(spec)
    assert isinstance(pipeline, Compose) and len(pipeline) == len(expected)
    for module, (cls, attrs) in zip(pipeline, expected, strict=True):
        assert type(module) is cls
        for attr, value in attrs.items():
            assert getattr(module, attr) == value, f"{cls.__name__}.{attr}"


@pytest.mark.parametrize(
    "spec",
    [
        "shift",
        "shift(8),intensity(0.05)",
        "crop(84),jitter(0.4)",
        "crop(pad=2)",
        "erase(1,0.1,0.3,0.5)",
        "none",
    ],
)
def test_spec_round_trip(spec: str) -> None:
    first = make_augmentation(spec)
    second = make_augmentation(first.spec)
    assert second.spec == first.spec
    assert repr(second) == repr(first)


def test_spec_is_normalised() -> None:
    assert make_augmentation("SHIFT , gray").spec == "shift(4),grayscale(0.2)"
    assert make_augmentation("crop").spec == "crop(pad=4)"
    assert Compose([]).spec == "identity"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", r"the spec is empty"),
        ("   ", r"the spec is empty"),
        ("blur", r"unknown augmentation 'blur'; known augmentations: shift, crop, intensity"),
        ("__import__('os')", r"unknown augmentation '__import__'"),
        ("shift(4", r"unbalanced parentheses: missing '\)'"),
        ("shift)4(", r"unbalanced parentheses: '\)' without '\('"),
        ("shift((4))", r"nested parenthesis"),
        ("shift,,intensity", r"empty item"),
        ("shift,", r"empty item"),
        ("shift intensity", r"malformed item 'shift intensity'"),
        ("shift(4)x", r"malformed item"),
        ("shift(4,5)", r"shift takes at most 1 argument\(s\), shift\(pad\), got 2"),
        ("identity(1)", r"identity takes at most 0 argument"),
        ("shift(abc)", r"bad argument 'abc' to shift: arguments are numbers"),
        ("shift(1e)", r"bad argument '1e'"),
        ("intensity(nan)", r"bad argument 'nan'"),
        ("shift(4.5)", r"shift: 'pad' must be an integer, got '4.5'"),
        ("shift(-1)", r"`pad` must be an integer >= 0, got -1"),
        ("grayscale(1.5)", r"`p` must be a finite number in \[0.0, 1.0\], got 1.5"),
        ("jitter(0.4, 0.4, 0.4, 0.9)", r"`hue` must be a finite number in \[0.0, 0.5\]"),
        ("cutout(0.5, 0.3, 0.1)", r"0 < min <= max <= 1"),
        ("crop(pad=1, pad=2)", r"argument 'pad' of crop given twice"),
        ("shift(foo=1)", r"shift has no argument 'foo'; it takes shift\(pad\)"),
        ("crop(pad=2, 3)", r"positional argument '3' after a keyword argument"),
    ],
)
def test_make_augmentation_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        make_augmentation(spec)
    assert f"Invalid augmentation spec {spec!r}" in str(info.value)
    assert "Example of a valid spec: 'shift(4),intensity(0.1)'" in str(info.value)


def test_make_augmentation_rejects_non_string() -> None:
    with pytest.raises(
        ValueError, match=re.escape("spec must be a string such as 'shift(4),intensity(0.1)'")
    ):
        make_augmentation(["shift"])  # type: ignore[arg-type]


def test_register_augmentation_adds_a_spec_name_and_rejects_taken_names() -> None:
    saved, saved_aliases = dict(AUGMENTATIONS), dict(AUGMENTATION_ALIASES)
    try:

        @register_augmentation("negate")
        class Invert(Augmentation):
            name = "invert"

            def _augment(
                self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool
            ) -> torch.Tensor:
                return 1.0 - x

        x = images((2, 3, 40, 40))
        torch.testing.assert_close(make_augmentation("shift(0),negate")(x), 1.0 - x)
        assert make_augmentation("invert").spec == "invert"
        with pytest.raises(ValueError, match="'shift' is taken by RandomShift"):

            @register_augmentation()
            class Other(Augmentation):
                name = "shift"

        with pytest.raises(ValueError, match="'gray' is taken by Grayscale"):
            register_augmentation("gray")(Invert)
    finally:
        AUGMENTATIONS.clear()
        AUGMENTATIONS.update(saved)
        AUGMENTATION_ALIASES.clear()
        AUGMENTATION_ALIASES.update(saved_aliases)
