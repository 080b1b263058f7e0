"""Batched image augmentations for pixel observations, and a small spec parser.

Each :class:`Augmentation` maps float images ``[B, C, H, W]`` in ``[0, 1]`` (``C`` may be a frame stack, e.g.
4 gray or 4 RGB frames) to a new tensor of the same shape, dtype and device, in ``[0, 1]``, and never modifies
its input (:class:`Identity` returns it). Parameters are drawn per sample from the ``generator`` given to
``forward`` (on ``x``'s device) or else torch's global RNG, and shared by all channels, so stacked frames stay
aligned. Colour augmentations read ``C`` as RGB frames when it is a multiple of 3, else as gray frames (so 3
or 6 stacked gray frames would be read as RGB; stack 4, the usual Atari setup).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AUGMENTATIONS",
    "AUGMENTATION_ALIASES",
    "Augmentation",
    "ColorJitter",
    "Compose",
    "Cutout",
    "Grayscale",
    "Identity",
    "Intensity",
    "RandomCrop",
    "RandomShift",
    "check_frame_size",
    "make_augmentation",
    "register_augmentation",
    "shift_images",
]

SpecValue = int | float

# ITU-R BT.601 luma weights, the same ones PIL and torchvision use for "L" conversion.
_LUMA = (0.299, 0.587, 0.114)


def _yiq_hue_basis() -> list[list[list[float]]]:
    """``[A0, A1, A2]`` with the hue rotation ``R(theta) = A0 + cos(theta) A1 + sin(theta) A2`` of RGB: it
    rotates the chroma plane (I, Q) of YIQ space and keeps luma Y, one matmul instead of RGB -> HSV -> RGB."""
    to_yiq = torch.tensor([_LUMA, (0.596, -0.274, -0.322), (0.211, -0.523, 0.312)], dtype=torch.float64)
    parts = (
        [[1, 0, 0], [0, 0, 0], [0, 0, 0]],  # keeps Y
        [[0, 0, 0], [0, 1, 0], [0, 0, 1]],  # times cos(theta)
        [[0, 0, 0], [0, 0, -1], [0, 1, 0]],  # times sin(theta)
    )
    to_rgb = torch.linalg.inv(to_yiq)
    return [(to_rgb @ torch.tensor(m, dtype=torch.float64) @ to_yiq).tolist() for m in parts]


_HUE_BASIS = _yiq_hue_basis()


def _check_int(where: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: `{name}` must be an integer >= {minimum}, got {value!r}.")
    return value


def _check_float(where: str, name: str, value: object, low: float, high: float = math.inf) -> float:
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    if not (math.isfinite(number) and low <= number <= high):
        bound = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ValueError(f"{where}: `{name}` must be a finite number {bound}, got {value!r}.")
    return number


_NUMPY_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}
# NumPy madvises transparent huge pages for blocks of at least 4 MiB.
_HUGE_PAGE_MIN_BYTES = 4 * 1024 * 1024


def _output_buffer(like: torch.Tensor, shape: Sequence[int]) -> torch.Tensor | None:
    """Uninitialised CPU tensor of ``shape`` for ``out=``, or None to let torch allocate (small, non-CPU,
    not float16/32/64, or under autograd: ``out=`` ops record no gradients). Faulting in a fresh batch costs
    more than the arithmetic on it; NumPy's huge pages make it 3x faster than ``torch.empty`` for
    [256, 6, 84, 84] float32 (torch uses them only with ``THP_MEM_ALLOC_ENABLE=1``)."""
    np_dtype = _NUMPY_DTYPES.get(like.dtype)
    if np_dtype is None or like.device.type != "cpu" or (like.requires_grad and torch.is_grad_enabled()):
        return None
    if math.prod(shape) * like.element_size() < _HUGE_PAGE_MIN_BYTES:
        return None
    return torch.from_numpy(np.empty(tuple(shape), dtype=np_dtype))


def _copy(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``x`` unchanged: itself when the caller handed it over (``inplace``), else a copy."""
    if inplace:
        return x
    out = _output_buffer(x, x.shape)
    return x.clone() if out is None else out.copy_(x)


def _into(x: torch.Tensor, op: str, other: torch.Tensor, inplace: bool) -> torch.Tensor:
    """``x.<op>(other)`` for ``op`` "mul" or "sub": in place when ``inplace``, else into a new tensor."""
    if inplace:
        return getattr(x, f"{op}_")(other)
    return getattr(torch, op)(x, other, out=_output_buffer(x, x.shape))


def _luma(frames: torch.Tensor) -> torch.Tensor:
    """Luminance of RGB frames: [B, F, 3, H, W] -> [B, F, 1, H, W]."""
    r, g, b = frames[:, :, 0:1], frames[:, :, 1:2], frames[:, :, 2:3]
    return (r * _LUMA[0]).add_(g, alpha=_LUMA[1]).add_(b, alpha=_LUMA[2])


def _split_frames(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """View ``[B, C, H, W]`` as ``[B, F, K, H, W]`` frames; True if they are RGB (K = 3), not gray (K = 1)."""
    batch, channels, height, width = x.shape
    k = 3 if channels % 3 == 0 else 1
    return x.reshape(batch, channels // k, k, height, width), k == 3


class Augmentation(nn.Module):
    """Base class: input checks, spec string and repr. Subclasses implement :meth:`_augment`; ``inplace=True``
    hands over an intermediate that :class:`Compose` owns, to overwrite instead of allocating a new batch."""

    name: ClassVar[str] = ""  #: canonical name in :data:`AUGMENTATIONS` and spec strings
    spec_params: ClassVar[tuple[str, ...]] = ()  #: spec arguments in positional order
    int_params: ClassVar[frozenset[str]] = frozenset()  #: spec arguments that must be integers

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch ``x`` of [B, C, H, W] floating images in [0, 1] (not modified).

        :param generator: RNG on ``x``'s device, or None for torch's global RNG.
        :raises ValueError: unless ``x`` is a 4-D floating tensor and ``generator`` is on its device.
        """
        where = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise ValueError(
                f"{where}: expected a torch.Tensor of shape [B, C, H, W], got {type(x).__name__}."
            )
        if not x.is_floating_point():
            raise ValueError(
                f"{where}: expected a floating image tensor with values in [0, 1], got dtype {x.dtype}; "
                "convert uint8 observations with `x.float() / 255`."
            )
        if x.dim() != 4:
            raise ValueError(f"{where}: expected a 4-D tensor [B, C, H, W], got shape {tuple(x.shape)}.")
        # torch only reports a device mismatch deep inside the sampling kernel; say what to do instead.
        if generator is not None and generator.device.type != x.device.type:
            raise ValueError(
                f"{where}: the generator is on {generator.device} but the images are on {x.device}; "
                f"create it with torch.Generator(device={str(x.device)!r})."
            )
        return self._augment(x, generator, inplace=False)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        raise NotImplementedError

    def spec_values(self) -> dict[str, SpecValue]:
        """The spec arguments of this module, in :attr:`spec_params` order."""
        return {p: getattr(self, p) for p in self.spec_params}

    @classmethod
    def from_spec_values(cls, values: Mapping[str, SpecValue]) -> Augmentation:
        """Build the module from spec arguments (a subset of :attr:`spec_params`)."""
        return cls(**values)

    @property
    def spec(self) -> str:
        """Normalised spec string, e.g. ``"shift(4)"``; ``make_augmentation(m.spec)`` rebuilds it."""
        values = self.spec_values()
        args = ",".join(str(v) if isinstance(v, int) else repr(float(v)) for v in values.values())
        return f"{self.name}({args})" if values else self.name

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.spec_values().items())


AUGMENTATIONS: dict[str, type[Augmentation]] = {}  #: canonical spec name -> class (register_augmentation)
AUGMENTATION_ALIASES: dict[str, str] = {}  #: alias -> canonical spec name

_A = TypeVar("_A", bound=type[Augmentation])


def register_augmentation(*aliases: str) -> Callable[[_A], _A]:
    """Class decorator: make an :class:`Augmentation` subclass, constructible with no arguments (the contract
    tests run every registered class), usable in spec strings under its ``name`` and ``aliases``. Raises
    ValueError for a class without a ``name`` or a name or alias that is taken."""

    def register(cls: _A) -> _A:
        if not (isinstance(cls, type) and issubclass(cls, Augmentation)) or not cls.name:
            raise ValueError(
                f"register_augmentation: {cls!r} must be an Augmentation subclass with a `name`."
            )
        for name in (cls.name, *aliases):
            owner = AUGMENTATIONS.get(AUGMENTATION_ALIASES.get(name, name))
            if owner is not None and owner is not cls:
                raise ValueError(f"register_augmentation: the name {name!r} is taken by {owner.__name__}.")
        AUGMENTATIONS[cls.name] = cls
        AUGMENTATION_ALIASES.update(dict.fromkeys(aliases, cls.name))
        return cls

    return register


def _gather_window(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """New [B, C, h, w] tensor ``out[b, c, i, j] = x[b, c, top[b] + i, left[b] + j]``, indices clamped into
    the frame. One ``gather`` with an index expanded over channels: faster on CPU than ``grid_sample``,
    ``unfold`` or advanced indexing (``benchmarks/bench_augmentations.py``)."""
    batch, channels, height, width = x.shape
    rows = (torch.arange(h, device=x.device) + top.unsqueeze(1)).clamp_(0, height - 1)  # [B, h]
    cols = (torch.arange(w, device=x.device) + left.unsqueeze(1)).clamp_(0, width - 1)  # [B, w]
    flat = (rows * width).unsqueeze(2) + cols.unsqueeze(1)  # [B, h, w] index into H*W
    index = flat.view(batch, 1, h * w).expand(batch, channels, h * w)
    out = torch.gather(x.reshape(batch, channels, -1), 2, index, out=_output_buffer(x, index.shape))
    return out.view(batch, channels, h, w)


def shift_images(x: torch.Tensor, shift_y: torch.Tensor, shift_x: torch.Tensor) -> torch.Tensor:
    """Translate each sample of ``x`` ([B, C, H, W], any dtype) by its own integer offset, replicating the
    border: ``out[b, c, i, j] = x[b, c, clamp(i + shift_y[b], 0, H - 1), clamp(j + shift_x[b], 0, W - 1)]``,
    i.e. a crop of ``F.pad(x, (p,) * 4, mode="replicate")`` at ``(p + shift_y[b], p + shift_x[b])`` without
    allocating the padding. ``shift_y``, ``shift_x``: [B] integer tensors (any sign) on ``x``'s device.
    """
    batch, _, height, width = x.shape
    if shift_y.shape != (batch,) or shift_x.shape != (batch,):
        raise ValueError(
            f"shift_images: shifts must have shape [B] = [{batch}], got {tuple(shift_y.shape)} and "
            f"{tuple(shift_x.shape)}."
        )
    return _gather_window(x, shift_y.long(), shift_x.long(), height, width)


@register_augmentation()
class RandomShift(Augmentation):
    """Random translation by up to ``pad`` (integer >= 0) pixels with replicated borders (DrQ): exactly
    replicate-pad and crop at one of ``(2 pad + 1)^2`` offsets, uniform per sample; ``pad=0`` copies."""

    name = "shift"
    spec_params = ("pad",)
    int_params = frozenset({"pad"})

    def __init__(self, pad: int = 4) -> None:
        super().__init__()
        self.pad = _check_int("RandomShift", "pad", pad, 0)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        if self.pad == 0:
            return _copy(x, inplace)
        shifts = torch.randint(-self.pad, self.pad + 1, (2, x.shape[0]), generator=generator, device=x.device)
        return shift_images(x, shifts[0], shifts[1])


@register_augmentation()
class RandomCrop(Augmentation):
    """Random crop resized back to the input size bilinearly (``align_corners=False``), RAD / CURL style: a
    :meth:`window` at a uniform integer position per sample, ``min(size, H) x min(size, W)`` with ``size``
    (>= 1; frames not larger come back as a copy), else ``(H - 2 pad) x (W - 2 pad)`` (``pad`` >= 0), which
    moves like :class:`RandomShift`'s but zooms in instead of padding."""

    name = "crop"
    spec_params = ("size", "pad")
    int_params = frozenset({"size", "pad"})

    def __init__(self, size: int | None = None, pad: int = 4) -> None:
        super().__init__()
        self.size = None if size is None else _check_int("RandomCrop", "size", size, 1)
        self.pad = _check_int("RandomCrop", "pad", pad, 0)

    def spec_values(self) -> dict[str, SpecValue]:
        return {"size": self.size} if self.size is not None else {"pad": self.pad}

    @property
    def spec(self) -> str:
        # size=None cannot be written positionally, so that case uses the keyword form.
        return f"crop({self.size})" if self.size is not None else f"crop(pad={self.pad})"

    def extra_repr(self) -> str:
        return f"size={self.size!r}, pad={self.pad!r}"

    def window(self, height: int, width: int) -> tuple[int, int]:
        """Crop window ``(h, w)`` for ``H x W`` frames; ValueError if it is empty (``2 pad >= min(H, W)``)."""
        if self.size is not None:
            return min(self.size, height), min(self.size, width)
        if 2 * self.pad >= min(height, width):
            raise ValueError(
                f"RandomCrop: pad={self.pad} leaves no window in {height}x{width} frames; "
                f"use pad < {min(height, width) / 2} or give `size`."
            )
        return height - 2 * self.pad, width - 2 * self.pad

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        batch, _, height, width = x.shape
        crop_h, crop_w = self.window(height, width)
        if (crop_h, crop_w) == (height, width):
            return _copy(x, inplace)
        top = torch.randint(0, height - crop_h + 1, (batch,), generator=generator, device=x.device)
        left = torch.randint(0, width - crop_w + 1, (batch,), generator=generator, device=x.device)
        crops = _gather_window(x, top, left, crop_h, crop_w)
        out = F.interpolate(crops, size=(height, width), mode="bilinear", align_corners=False)
        # Bilinear weights are convex, but their rounding can overshoot 1 by an ulp.
        return out.clamp_(0.0, 1.0)


@register_augmentation()
class Intensity(Augmentation):
    """Random brightness scaling ``x * (1 + scale * clip(N(0, 1), -2, 2))`` per sample (DrQ's Atari setup),
    clamped to [0, 1]; ``scale`` in [0, 0.5] keeps the factor >= 0."""

    name = "intensity"
    spec_params = ("scale",)

    def __init__(self, scale: float = 0.1) -> None:
        super().__init__()
        self.scale = _check_float("Intensity", "scale", scale, 0.0, 0.5)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        batch = x.shape[0]
        noise = torch.randn(batch, generator=generator, device=x.device, dtype=x.dtype).clamp_(-2.0, 2.0)
        factor = noise.mul_(self.scale).add_(1.0).view(batch, 1, 1, 1)
        # factor >= 0 keeps the lower bound, so only values scaled above 1 need clamping.
        return _into(x, "mul", factor, inplace).clamp_max_(1.0)


def _blend(frames: torch.Tensor, ref: torch.Tensor, factor: torch.Tensor, inplace: bool) -> torch.Tensor:
    """``ref + factor * (frames - ref)`` clamped to [0, 1], written over ``frames`` when ``inplace``."""
    return _into(frames, "sub", ref, inplace).mul_(factor).add_(ref).clamp_(0.0, 1.0)


@register_augmentation("color_jitter")
class ColorJitter(Augmentation):
    """Random brightness, contrast, saturation and hue, per sample and shared by its frames.

    Applied in this order, each step clamped to [0, 1] as in torchvision, with factors ``U(max(0, 1 - k),
    1 + k)`` for strength ``k >= 0``: brightness ``x * b``; contrast ``mean + c (x - mean)`` with each frame's
    mean luminance; saturation, a blend with each pixel's luminance (RGB only). Hue (RGB only) rotates the YIQ
    chroma plane by ``U(-hue, hue)`` turns, ``hue`` in [0, 0.5]: it keeps luma and approximates an HSV hue
    shift with one 3x3 matrix per sample.
    """

    name = "jitter"
    spec_params = ("brightness", "contrast", "saturation", "hue")

    def __init__(
        self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.0
    ) -> None:
        super().__init__()
        self.brightness = _check_float("ColorJitter", "brightness", brightness, 0.0)
        self.contrast = _check_float("ColorJitter", "contrast", contrast, 0.0)
        self.saturation = _check_float("ColorJitter", "saturation", saturation, 0.0)
        self.hue = _check_float("ColorJitter", "hue", hue, 0.0, 0.5)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        batch, channels, height, width = x.shape
        frames, rgb = _split_frames(x)  # [B, F, K, H, W]

        def uniform(low: float, high: float) -> torch.Tensor:  # [B] samples of U(low, high)
            u = torch.rand(batch, generator=generator, device=x.device, dtype=x.dtype)
            return u.mul_(high - low).add_(low)

        def factor(strength: float) -> torch.Tensor:
            return uniform(max(0.0, 1.0 - strength), 1.0 + strength).view(batch, 1, 1, 1, 1)

        owned = inplace  # whether `frames` may be overwritten (it is ours, or the caller handed it over)
        if self.brightness > 0:
            frames, owned = _into(frames, "mul", factor(self.brightness), owned).clamp_max_(1.0), True
        if self.contrast > 0:
            mean = (_luma(frames) if rgb else frames).mean(dim=(-2, -1), keepdim=True)  # [B, F, 1, 1, 1]
            frames, owned = _blend(frames, mean, factor(self.contrast), owned), True
        if rgb and self.saturation > 0:
            frames, owned = _blend(frames, _luma(frames), factor(self.saturation), owned), True
        if rgb and self.hue > 0:
            theta = uniform(-self.hue, self.hue).mul_(2.0 * math.pi)
            basis = torch.tensor(_HUE_BASIS, device=x.device, dtype=x.dtype)  # [3, 3, 3]
            weights = torch.stack([torch.ones_like(theta), theta.cos(), theta.sin()], dim=1)  # [B, 3]
            rotation = torch.einsum("bk,kij->bij", weights, basis)  # [B, 3, 3]
            pixels = frames.reshape(batch, frames.shape[1], 3, height * width)
            frames, owned = torch.matmul(rotation.unsqueeze(1), pixels).clamp_(0.0, 1.0), True
        return frames.reshape(batch, channels, height, width) if owned else _copy(x)


@register_augmentation("gray")
class Grayscale(Augmentation):
    """With probability ``p`` per sample, fill the 3 channels of every RGB frame with its luminance (BT.601
    weights); gray stacks come back as a copy."""

    name = "grayscale"
    spec_params = ("p",)

    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        self.p = _check_float("Grayscale", "p", p, 0.0, 1.0)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        batch, channels, height, width = x.shape
        frames, rgb = _split_frames(x)
        # Draw even for gray input so that the RNG stream does not depend on the channel count.
        chosen = (torch.rand(batch, generator=generator, device=x.device) < self.p).view(batch, 1, 1, 1, 1)
        if not rgb:
            return _copy(x, inplace)
        # The [B, F, 1, H, W] luma broadcasts over the 3 channels of each frame.
        out = torch.where(chosen, _luma(frames), frames, out=_output_buffer(x, frames.shape))
        return out.reshape(batch, channels, height, width)


@register_augmentation("erase")
class Cutout(Augmentation):
    """Random erasing: with probability ``p`` per sample, fill one rectangle with ``value`` (in [0, 1]) in
    all channels. It covers a fraction ``U(*scale)`` of the frame, ``0 < min <= max <= 1``, with an aspect
    ratio log-uniform in [0.3, 3.3] as torchvision's ``RandomErasing``, clipped sides, uniform position."""

    name = "cutout"
    spec_params = ("p", "min_scale", "max_scale", "value")
    _log_ratio = (math.log(0.3), math.log(3.3))

    def __init__(self, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.2), value: float = 0.0) -> None:
        super().__init__()
        self.p = _check_float("Cutout", "p", p, 0.0, 1.0)
        if not isinstance(scale, (tuple, list)) or len(scale) != 2:
            raise ValueError(f"Cutout: `scale` must be a pair (min, max), got {scale!r}.")
        self.min_scale = _check_float("Cutout", "scale[0]", scale[0], 0.0, 1.0)
        self.max_scale = _check_float("Cutout", "scale[1]", scale[1], 0.0, 1.0)
        if not 0.0 < self.min_scale <= self.max_scale:
            raise ValueError(f"Cutout: `scale` must satisfy 0 < min <= max <= 1, got {tuple(scale)!r}.")
        self.value = _check_float("Cutout", "value", value, 0.0, 1.0)

    @property
    def scale(self) -> tuple[float, float]:
        return self.min_scale, self.max_scale

    @classmethod
    def from_spec_values(cls, values: Mapping[str, SpecValue]) -> Augmentation:
        kwargs, default = dict(values), cls()
        scale = (kwargs.pop("min_scale", default.min_scale), kwargs.pop("max_scale", default.max_scale))
        return cls(scale=scale, **kwargs)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        batch, _, height, width = x.shape
        # Parameters in float32 whatever x's dtype: float16 would round the rectangle sizes.
        u = torch.rand(5, batch, generator=generator, device=x.device)
        area = u[1].mul_(self.max_scale - self.min_scale).add_(self.min_scale).mul_(height * width)
        ratio = u[2].mul_(self._log_ratio[1] - self._log_ratio[0]).add_(self._log_ratio[0]).exp_()
        rect_h = (area * ratio).sqrt_().round_().clamp_(1, height)
        rect_w = (area / ratio).sqrt_().round_().clamp_(1, width)
        top = u[3].mul_(height - rect_h + 1).floor_()
        left = u[4].mul_(width - rect_w + 1).floor_()
        rows = torch.arange(height, device=x.device, dtype=torch.float32)
        cols = torch.arange(width, device=x.device, dtype=torch.float32)
        in_rows = (rows >= top[:, None]) & (rows < (top + rect_h)[:, None])  # [B, H]
        in_cols = (cols >= left[:, None]) & (cols < (left + rect_w)[:, None])  # [B, W]
        mask = (in_rows[:, :, None] & in_cols[:, None, :] & (u[0] < self.p)[:, None, None]).unsqueeze(1)
        if inplace:
            return x.masked_fill_(mask, self.value)
        fill = x.new_full((), self.value)  # 0-d, on x's device: torch.where(out=) needs tensors
        return torch.where(mask, fill, x, out=_output_buffer(x, x.shape))


@register_augmentation("none")
class Identity(Augmentation):
    """No augmentation: returns its input itself (not a copy), like :class:`torch.nn.Identity`."""

    name = "identity"

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        return x


class Compose(Augmentation):
    """Apply ``augmentations`` (modules whose ``forward`` takes ``(x, generator=...)``; none is the identity)
    in order with the same generator. Steps after the first that made a new tensor work in place on it
    (never on the input, nor on tensors that require grad)."""

    name = "compose"

    def __init__(self, augmentations: Sequence[nn.Module]) -> None:
        super().__init__()
        if isinstance(augmentations, nn.Module) or not isinstance(augmentations, Sequence):
            raise ValueError(f"Compose: expected a sequence of modules, got {type(augmentations).__name__}.")
        for i, module in enumerate(augmentations):
            if not isinstance(module, nn.Module):
                raise ValueError(f"Compose: element {i} is a {type(module).__name__}, expected an nn.Module.")
        self.augmentations = nn.ModuleList(augmentations)

    def __len__(self) -> int:
        return len(self.augmentations)

    def __getitem__(self, index: int) -> nn.Module:
        return self.augmentations[index]

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self.augmentations)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        owned = inplace
        for module in self.augmentations:
            if isinstance(module, Augmentation):
                out = module._augment(x, generator, inplace=owned)
                # Our modules return either their input or a fresh tensor, never a view of it.
                owned = owned or out is not x
            else:
                out, owned = module(x, generator=generator), False  # unknown module: may alias anything
            # Autograd raises when an in-place op overwrites a tensor saved for backward; the built-in
            # steps happen not to (tested), but images rarely need gradients, so stay out of place.
            x, owned = out, owned and not (out.requires_grad and torch.is_grad_enabled())
        return x

    @property
    def spec(self) -> str:
        """Normalised spec (``"identity"`` when empty); ValueError if a step is not an Augmentation."""
        parts = []
        for module in self.augmentations:
            if not isinstance(module, Augmentation):
                raise ValueError(f"Compose.spec: {type(module).__name__} has no spec string.")
            parts.append(module.spec)
        return ",".join(parts) or Identity.name

    def extra_repr(self) -> str:
        try:
            return f"spec={self.spec!r}"
        except ValueError:
            return ""


_EXAMPLE_SPEC = "shift(4),intensity(0.1)"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_ITEM_RE = re.compile(rf"\s*({_NAME})\s*(?:\((.*)\))?\s*", re.DOTALL)
_ARG_RE = re.compile(rf"\s*(?:({_NAME})\s*=\s*)?({_NUMBER})\s*")
_INT_RE = re.compile(r"[+-]?\d+")


def _known_names() -> str:
    aliases = ", ".join(f"{a} -> {n}" for a, n in AUGMENTATION_ALIASES.items())
    return f"known augmentations: {', '.join(AUGMENTATIONS)} (aliases: {aliases})"


def _spec_error(spec: str, problem: str) -> ValueError:
    return ValueError(
        f"Invalid augmentation spec {spec!r}: {problem}. Example of a valid spec: {_EXAMPLE_SPEC!r}."
    )


def _split_top_level(spec: str) -> list[str]:
    """Split on commas outside parentheses; raise on unbalanced or nested parentheses."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(spec):
        if char == "(":
            depth += 1
            if depth > 1:
                raise _spec_error(spec, f"nested parenthesis at position {i}")
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise _spec_error(spec, f"unbalanced parentheses: ')' without '(' at position {i}")
        elif char == "," and depth == 0:
            items.append(spec[start:i])
            start = i + 1
    if depth != 0:
        raise _spec_error(spec, "unbalanced parentheses: missing ')'")
    return [*items, spec[start:]]


def _parse_item(spec: str, item: str) -> Augmentation:
    fail = functools.partial(_spec_error, spec)
    if not item.strip():
        raise fail("empty item (check for a stray comma)")
    match = _ITEM_RE.fullmatch(item)
    if match is None:
        raise fail(f"malformed item {item.strip()!r}; write name or name(number, ...)")
    raw_name, raw_args = match.group(1), match.group(2)
    name = AUGMENTATION_ALIASES.get(raw_name.lower(), raw_name.lower())
    if name not in AUGMENTATIONS:
        raise fail(f"unknown augmentation {raw_name!r}; {_known_names()}")
    cls = AUGMENTATIONS[name]
    params = cls.spec_params
    signature = f"{name}({', '.join(params)})" if params else name
    args = [] if raw_args is None or not raw_args.strip() else raw_args.split(",")
    if len(args) > len(params):
        raise fail(f"{name} takes at most {len(params)} argument(s), {signature}, got {len(args)}")
    values: dict[str, SpecValue] = {}
    seen_keyword = False
    for position, arg in enumerate(args):
        arg_match = _ARG_RE.fullmatch(arg)
        if arg_match is None:
            raise fail(f"bad argument {arg.strip()!r} to {name}: arguments are numbers, {signature}")
        keyword, number = arg_match.group(1), arg_match.group(2)
        if keyword is None and seen_keyword:
            raise fail(f"positional argument {number!r} after a keyword argument in {name}")
        if keyword is not None and keyword not in params:
            raise fail(f"{name} has no argument {keyword!r}; it takes {signature}")
        seen_keyword = seen_keyword or keyword is not None
        param = params[position] if keyword is None else keyword
        if param in values:
            raise fail(f"argument {param!r} of {name} given twice")
        is_int = param in cls.int_params
        if is_int and _INT_RE.fullmatch(number) is None:
            raise fail(f"{name}: {param!r} must be an integer, got {number!r}")
        values[param] = int(number) if is_int else float(number)
    try:
        return cls.from_spec_values(values)
    except ValueError as err:
        raise fail(f"{name}: {err}") from None


def make_augmentation(spec: str) -> Compose:
    """Build a :class:`Compose` from a spec such as ``"crop(84),jitter(0.4)"``; ``"none"`` for no-op.

    Grammar (whitespace allowed between tokens, names case-insensitive, numbers matched by a regex, no eval)::

        spec := item ("," item)*    item := name [ "(" [ arg ("," arg)* ] ")" ]    arg := [ param "=" ] number

    Names and arguments in positional order, all optional (positional ones first): ``shift(pad=4)``,
    ``crop(size, pad=4)``, ``intensity(scale=0.1)``, ``jitter(brightness=0.4, contrast=0.4, saturation=0.4,
    hue=0.0)`` (alias ``color_jitter``), ``grayscale(p=0.2)`` (``gray``), ``cutout(p=0.5, min_scale=0.02,
    max_scale=0.2, value=0.0)`` (``erase``), ``identity`` (``none``). ``make_augmentation(aug.spec)``
    rebuilds an equal pipeline.

    :raises ValueError: on an empty or malformed spec, an unknown name, a wrong argument count or an
        out-of-range value; the message says what is wrong and shows a valid spec.
    """
    if not isinstance(spec, str):
        raise ValueError(f"make_augmentation: spec must be a string such as {_EXAMPLE_SPEC!r}, got {spec!r}.")
    if not spec.strip():
        raise _spec_error(spec, f"the spec is empty (use 'none' for no augmentation; {_known_names()})")
    return Compose([_parse_item(spec, item) for item in _split_top_level(spec)])


def check_frame_size(augmentation: nn.Module, height: int, width: int) -> None:
    """Raise ValueError (naming the member and a fix) for augmentations that do nothing or cannot run on
    ``height x width`` frames, which would make every view the same image: ``crop(N)`` with ``N`` >= the frame
    size, ``shift(0)``, and ``crop(pad=p)`` with ``2 p`` >= the frame size."""
    for member in list(augmentation) if isinstance(augmentation, Compose) else [augmentation]:
        if isinstance(member, RandomCrop):
            if member.size is not None and member.size >= min(height, width):
                raise ValueError(
                    f"Augmentation {member.spec} does nothing on {height}x{width} observations: a crop "
                    f"window at least as large as the frame is the whole frame. Use a smaller window, "
                    f"e.g. crop({max(1, round(min(height, width) * 0.875))}) (RAD crops 84 of 100), or "
                    "shift(4)."
                )
            member.window(height, width)  # raises for a pad that leaves no window
        elif isinstance(member, RandomShift) and member.pad == 0:
            raise ValueError(f"Augmentation {member.spec} does nothing (pad 0); use e.g. shift(4).")
