"""Batched image augmentations for pixel observations, and a small spec parser.

Every augmentation is an :class:`torch.nn.Module` on float images ``x`` of shape
``[B, C, H, W]`` with values in ``[0, 1]``, channels first, exactly as Stable-Baselines3
hands observations to a features extractor. ``C`` may be a frame stack (e.g. 4 gray
frames, ``C = 4``, or 4 RGB frames, ``C = 12``). All of them

* return a tensor of the same shape and dtype, with values kept in ``[0, 1]``;
* never modify their input in place (every augmentation but :class:`Identity` returns a new
  tensor, so the result can be modified freely);
* draw independent parameters for every sample, but apply one sample's parameters to all of
  its channels, so that the frames of a stack stay aligned;
* take ``forward(x, generator=None)``: random numbers come from ``generator`` when given
  (it must live on ``x``'s device, e.g. ``torch.Generator(device="cuda")`` for CUDA input)
  and from torch's global RNG otherwise;
* run on ``x``'s device: every tensor they create is created there, so nothing is copied
  between host and accelerator;
* raise :class:`ValueError` unless ``x`` is a 4-D floating tensor.

Colour augmentations treat the channels as a stack of RGB frames when ``C`` is a multiple
of 3 and as a stack of gray frames otherwise (so 3 or 6 stacked *gray* frames would be read
as RGB; stack 4 gray frames, the usual Atari setup, to avoid the ambiguity).

:func:`make_augmentation` builds a :class:`Compose` from a spec string such as
``"shift,intensity"`` or ``"crop(84),jitter(0.4)"``; the grammar is documented there.
"""

from __future__ import annotations

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


def _yiq_hue_basis() -> tuple[list[list[float]], list[list[float]], list[list[float]]]:
    """Matrices ``A0, A1, A2`` with ``hue_rotation(theta) = A0 + cos(theta) A1 + sin(theta) A2``.

    A hue shift rotates the chroma plane (I, Q) of YIQ space and keeps luma Y; written back in
    RGB it is one 3x3 matrix per sample, so a batched hue jitter is a single batched matmul
    instead of the branchy RGB -> HSV -> RGB round trip.
    """
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
    )
    to_rgb = torch.linalg.inv(to_yiq)
    keep_y = torch.diag(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    cos_part = torch.diag(torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64))
    sin_part = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    a0, a1, a2 = (to_rgb @ m @ to_yiq for m in (keep_y, cos_part, sin_part))
    return a0.tolist(), a1.tolist(), a2.tolist()


_HUE_A0, _HUE_A1, _HUE_A2 = _yiq_hue_basis()


# ----------------------------------------------------------------------------- validation


def _check_images(x: object, where: str) -> torch.Tensor:
    """Raise ValueError unless ``x`` is a 4-D floating tensor ``[B, C, H, W]``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{where}: expected a torch.Tensor of shape [B, C, H, W], got {type(x).__name__}.")
    if not x.is_floating_point():
        raise ValueError(
            f"{where}: expected a floating image tensor with values in [0, 1], got dtype {x.dtype}; "
            "convert uint8 observations with `x.float() / 255`."
        )
    if x.dim() != 4:
        raise ValueError(f"{where}: expected a 4-D tensor [B, C, H, W], got shape {tuple(x.shape)}.")
    return x


def _check_generator(generator: torch.Generator | None, x: torch.Tensor, where: str) -> None:
    # torch only reports a device mismatch deep inside the sampling kernel; say what to do instead.
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(
            f"{where}: the generator is on {generator.device} but the images are on {x.device}; "
            f"create it with torch.Generator(device={str(x.device)!r})."
        )


def _check_int(where: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: `{name}` must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{where}: `{name}` must be an integer >= {minimum}, got {value}.")
    return value


def _check_float(where: str, name: str, value: object, low: float, high: float = math.inf) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and low <= number <= high:
            return number
    bound = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
    raise ValueError(f"{where}: `{name}` must be a finite number {bound}, got {value!r}.")


def _format_value(value: SpecValue) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


# ----------------------------------------------------------------------------- output buffers

_NUMPY_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}
# NumPy asks the kernel for transparent huge pages (madvise) for blocks of at least 4 MiB.
_HUGE_PAGE_MIN_BYTES = 4 * 1024 * 1024


def _output_buffer(like: torch.Tensor, shape: Sequence[int]) -> torch.Tensor | None:
    """Uninitialised contiguous tensor of ``shape`` for an ``out=`` argument, or None.

    Writing a fresh image batch on CPU costs more in page faults than in arithmetic: glibc
    serves a [256, 6, 84, 84] float32 batch (43 MB) with ``mmap`` and the kernel zero-fills it
    4 kB page by page on first touch. NumPy ``madvise``s large blocks for transparent huge
    pages, which measured 3x faster for such a batch than ``torch.empty`` (torch does the same
    only when ``THP_MEM_ALLOC_ENABLE=1`` is set); see ``benchmarks/bench_augmentations.py``.

    :return: a buffer on CPU for large float16/32/64 outputs outside autograd (``out=`` ops do
        not record gradients); None otherwise, meaning "let torch allocate".
    """
    np_dtype = _NUMPY_DTYPES.get(like.dtype)
    if np_dtype is None or like.device.type != "cpu" or (like.requires_grad and torch.is_grad_enabled()):
        return None
    if math.prod(shape) * like.element_size() < _HUGE_PAGE_MIN_BYTES:
        return None
    return torch.from_numpy(np.empty(tuple(shape), dtype=np_dtype))


def _copy(x: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` (contiguous when it could use a huge-page buffer)."""
    out = _output_buffer(x, x.shape)
    return x.clone() if out is None else out.copy_(x)


# ----------------------------------------------------------------------------- random draws


def _uniform(
    low: float, high: float, n: int, generator: torch.Generator | None, like: torch.Tensor
) -> torch.Tensor:
    """[n] samples of U(low, high) on ``like``'s device and dtype."""
    u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return u.mul_(high - low).add_(low)


def _luma(frames: torch.Tensor) -> torch.Tensor:
    """Luminance of RGB frames: [B, F, 3, H, W] -> [B, F, 1, H, W]."""
    r, g, b = frames[:, :, 0:1], frames[:, :, 1:2], frames[:, :, 2:3]
    return (r * _LUMA[0]).add_(g, alpha=_LUMA[1]).add_(b, alpha=_LUMA[2])


def _split_frames(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """View ``[B, C, H, W]`` as frames ``[B, F, K, H, W]`` with K = 3 (RGB) or 1 (gray).

    :return: the frames and whether they are RGB (``C`` a multiple of 3).
    """
    batch, channels, height, width = x.shape
    rgb = channels % 3 == 0
    k = 3 if rgb else 1
    return x.reshape(batch, channels // k, k, height, width), rgb


# ----------------------------------------------------------------------------- base class


class Augmentation(nn.Module):
    """Base class: input validation, generator check, spec string and repr.

    Subclasses implement :meth:`_augment`. The ``inplace`` flag lets :class:`Compose` hand
    an intermediate tensor that it owns to the next step, which may then overwrite it instead
    of allocating a new image batch: on CPU, faulting in the memory of a fresh batch costs more
    than the arithmetic on it (see :func:`_output_buffer`).
    """

    #: canonical name in :data:`AUGMENTATIONS` and spec strings
    name: ClassVar[str] = ""
    #: spec arguments in positional order
    spec_params: ClassVar[tuple[str, ...]] = ()
    #: spec arguments that must be integers
    int_params: ClassVar[frozenset[str]] = frozenset()

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch of images.

        :param x: [B, C, H, W] floating images in [0, 1]; not modified.
        :param generator: RNG on ``x``'s device, or None for torch's global RNG.
        :return: [B, C, H, W] augmented images, same dtype and device as ``x``.
        """
        where = type(self).__name__
        _check_images(x, where)
        _check_generator(generator, x, where)
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
        if not values:
            return self.name
        return f"{self.name}({','.join(_format_value(v) for v in values.values())})"

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.spec_values().items())


#: canonical spec name -> class, filled by :func:`register_augmentation`
AUGMENTATIONS: dict[str, type[Augmentation]] = {}
#: alias -> canonical spec name
AUGMENTATION_ALIASES: dict[str, str] = {}

_A = TypeVar("_A", bound=type[Augmentation])


def register_augmentation(*aliases: str) -> Callable[[_A], _A]:
    """Class decorator: make an :class:`Augmentation` subclass available in spec strings under
    its ``name`` (and ``aliases``), for :func:`make_augmentation`, the CLI and the presets.

    Registered classes must be constructible with no arguments (their defaults): the contract
    tests (shape, dtype, range, input untouched, per-sample parameters, aligned frame stacks,
    generator reproducibility) run over every registered augmentation.

    :raises ValueError: for a class without a ``name`` or a name or alias that is taken.
    """

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


# ----------------------------------------------------------------------------- geometric


def _gather_pixels(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``out[b, c, i, j] = x[b, c, rows[b, i], cols[b, j]]`` for every channel ``c``.

    One ``gather`` over the flattened frame with a [B, 1, h*w] index that ``expand`` shares
    across channels, so the index is not materialised C times. Measured faster on CPU than
    ``grid_sample``, ``unfold`` windows or advanced indexing (``benchmarks/bench_augmentations.py``).

    :param x: [B, C, H, W] images.
    :param rows: [B, h] int64 row indices in [0, H).
    :param cols: [B, w] int64 column indices in [0, W).
    :return: [B, C, h, w] new tensor.
    """
    batch, channels, _, width = x.shape
    out_h, out_w = rows.shape[1], cols.shape[1]
    flat = (rows * width).unsqueeze(2) + cols.unsqueeze(1)  # [B, h, w] index into H*W
    index = flat.view(batch, 1, out_h * out_w).expand(batch, channels, out_h * out_w)
    source = x.reshape(batch, channels, -1)
    out = torch.gather(source, 2, index, out=_output_buffer(x, index.shape))
    return out.view(batch, channels, out_h, out_w)


def shift_images(x: torch.Tensor, shift_y: torch.Tensor, shift_x: torch.Tensor) -> torch.Tensor:
    """Translate every sample by its own integer offset, replicating the border pixels.

    ``out[b, c, i, j] = x[b, c, clamp(i + shift_y[b], 0, H - 1), clamp(j + shift_x[b], 0, W - 1)]``,
    which equals cropping ``F.pad(x, (p, p, p, p), mode="replicate")`` at offset
    ``(p + shift_y[b], p + shift_x[b])`` for any ``p >= max |shift|``. Clamping the indices
    replaces the padding, so the only full-size allocation is the output.

    :param x: [B, C, H, W] images (any dtype).
    :param shift_y: [B] integer offsets along H (any sign), on ``x``'s device.
    :param shift_x: [B] integer offsets along W (any sign), on ``x``'s device.
    :return: [B, C, H, W] shifted copy; every output pixel is an input pixel of the same sample.
    """
    batch, _, height, width = x.shape
    if shift_y.shape != (batch,) or shift_x.shape != (batch,):
        raise ValueError(
            f"shift_images: shifts must have shape [B] = [{batch}], got {tuple(shift_y.shape)} and "
            f"{tuple(shift_x.shape)}."
        )
    rows = (torch.arange(height, device=x.device) + shift_y.long().unsqueeze(1)).clamp_(0, height - 1)
    cols = (torch.arange(width, device=x.device) + shift_x.long().unsqueeze(1)).clamp_(0, width - 1)
    return _gather_pixels(x, rows, cols)


@register_augmentation()
class RandomShift(Augmentation):
    """Random translation by up to ``pad`` pixels with replicated borders (DrQ).

    Equivalent to replicate-padding by ``pad`` and cropping a random H x W window, with the
    offset drawn uniformly from the ``(2 pad + 1)^2`` integer positions per sample. The result
    is bit-exact: every output pixel is a pixel of the padded input. ``pad=0`` is the identity
    (a copy is returned).

    :param pad: maximal shift in pixels, an integer >= 0.
    """

    name = "shift"
    spec_params = ("pad",)
    int_params = frozenset({"pad"})

    def __init__(self, pad: int = 4) -> None:
        super().__init__()
        self.pad = _check_int("RandomShift", "pad", pad, 0)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        if self.pad == 0:
            return x if inplace else _copy(x)
        batch = x.shape[0]
        shifts = torch.randint(
            -self.pad, self.pad + 1, (2, batch), generator=generator, device=x.device, dtype=torch.long
        )
        return shift_images(x, shifts[0], shifts[1])


@register_augmentation()
class RandomCrop(Augmentation):
    """Random crop resized back to the input size (RAD / CURL style random zoom).

    A window of ``h x w`` pixels is cropped at a uniformly random integer position (per
    sample, shared by all channels) and resized back to ``H x W`` with bilinear interpolation
    (``align_corners=False``), so the output has the input's shape:

    * ``size`` given: ``h = min(size, H)``, ``w = min(size, W)``. When the frame is not larger
      than ``size`` the crop is the whole frame and the module is the identity (a copy);
      RAD's ``crop(84)`` is meant for frames rendered larger than 84 x 84.
    * ``size=None``: ``h = H - 2 pad``, ``w = W - 2 pad``, i.e. the window moves over the same
      ``(2 pad + 1)^2`` positions as :class:`RandomShift` but is zoomed in instead of padded.

    :param size: side of the square crop window in pixels (>= 1), or None to derive it from ``pad``.
    :param pad: margin used when ``size`` is None (>= 0); ignored otherwise.
    """

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
        if self.size is not None:
            return f"crop({self.size})"
        return f"crop(pad={self.pad})"

    def extra_repr(self) -> str:
        return f"size={self.size!r}, pad={self.pad!r}"

    def window(self, height: int, width: int) -> tuple[int, int]:
        """Crop window ``(h, w)`` used for ``H x W`` frames.

        :raises ValueError: when ``size`` is None and ``2 pad >= min(H, W)``.
        """
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
            return x if inplace else _copy(x)
        top = torch.randint(0, height - crop_h + 1, (batch,), generator=generator, device=x.device)
        left = torch.randint(0, width - crop_w + 1, (batch,), generator=generator, device=x.device)
        rows = torch.arange(crop_h, device=x.device) + top.unsqueeze(1)  # [B, h]
        cols = torch.arange(crop_w, device=x.device) + left.unsqueeze(1)  # [B, w]
        crops = _gather_pixels(x, rows, cols)  # [B, C, h, w]
        out = F.interpolate(crops, size=(height, width), mode="bilinear", align_corners=False)
        # Bilinear weights are convex, but their rounding can overshoot 1 by an ulp.
        return out.clamp_(0.0, 1.0)


# ----------------------------------------------------------------------------- photometric


@register_augmentation()
class Intensity(Augmentation):
    """Random brightness scaling ``x * (1 + scale * clip(N(0, 1), -2, 2))`` (DrQ's Atari setup).

    One noise value per sample, shared by all channels; the result is clamped to [0, 1].

    :param scale: noise scale, a number in [0, 0.5] (so the factor stays >= 0).
    """

    name = "intensity"
    spec_params = ("scale",)

    def __init__(self, scale: float = 0.1) -> None:
        super().__init__()
        self.scale = _check_float("Intensity", "scale", scale, 0.0, 0.5)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        batch = x.shape[0]
        noise = torch.randn(batch, generator=generator, device=x.device, dtype=x.dtype).clamp_(-2.0, 2.0)
        factor = noise.mul_(self.scale).add_(1.0).view(batch, 1, 1, 1)
        out = x.mul_(factor) if inplace else torch.mul(x, factor, out=_output_buffer(x, x.shape))
        # factor >= 0 keeps the lower bound, so only values scaled above 1 need clamping.
        return out.clamp_max_(1.0)


@register_augmentation("color_jitter")
class ColorJitter(Augmentation):
    """Random brightness, contrast, saturation and hue, batched over samples and frames.

    Factors are drawn per sample and shared by every frame of the sample, then applied in
    this fixed order, each followed by a clamp to [0, 1] (as torchvision does per step):

    * brightness ``b ~ U(max(0, 1 - brightness), 1 + brightness)``: ``x * b``;
    * contrast ``c ~ U(max(0, 1 - contrast), 1 + contrast)``: blend with the mean luminance of
      each frame, ``mean + c (x - mean)``;
    * saturation ``s ~ U(max(0, 1 - saturation), 1 + saturation)``: blend with each pixel's
      luminance (RGB only);
    * hue ``h ~ U(-hue, hue)`` turns: rotation of the chroma plane in YIQ space, which keeps luma
      and approximates an HSV hue shift with one 3x3 matrix per sample (RGB only).

    For gray stacks (``C`` not a multiple of 3) only brightness and contrast apply.

    :param brightness: brightness jitter strength, >= 0.
    :param contrast: contrast jitter strength, >= 0.
    :param saturation: saturation jitter strength, >= 0.
    :param hue: hue jitter in turns, in [0, 0.5].
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

    def _factor(
        self, strength: float, n: int, generator: torch.Generator | None, like: torch.Tensor
    ) -> torch.Tensor:
        """[n, 1, 1, 1, 1] factors ~ U(max(0, 1 - strength), 1 + strength)."""
        return _uniform(max(0.0, 1.0 - strength), 1.0 + strength, n, generator, like).view(n, 1, 1, 1, 1)

    @staticmethod
    def _buffer(frames: torch.Tensor) -> torch.Tensor | None:
        return _output_buffer(frames, frames.shape)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        batch, channels, height, width = x.shape
        frames, rgb = _split_frames(x)  # [B, F, K, H, W]
        # `owned`: `frames` may be overwritten (it is ours, or the caller handed it over).
        owned = inplace
        if self.brightness > 0:
            factor = self._factor(self.brightness, batch, generator, x)
            frames = frames.mul_(factor) if owned else torch.mul(frames, factor, out=self._buffer(frames))
            owned = True
            frames.clamp_max_(1.0)
        if self.contrast > 0:
            factor = self._factor(self.contrast, batch, generator, x)
            gray = _luma(frames) if rgb else frames
            mean = gray.mean(dim=(-2, -1), keepdim=True)  # [B, F, 1, 1, 1]
            frames = frames.sub_(mean) if owned else torch.sub(frames, mean, out=self._buffer(frames))
            owned = True
            frames.mul_(factor).add_(mean).clamp_(0.0, 1.0)
        if rgb and self.saturation > 0:
            factor = self._factor(self.saturation, batch, generator, x)
            gray = _luma(frames)  # [B, F, 1, H, W]
            frames = frames.sub_(gray) if owned else torch.sub(frames, gray, out=self._buffer(frames))
            owned = True
            frames.mul_(factor).add_(gray).clamp_(0.0, 1.0)
        if rgb and self.hue > 0:
            theta = _uniform(-self.hue, self.hue, batch, generator, x).mul_(2.0 * math.pi)
            basis = torch.tensor([_HUE_A0, _HUE_A1, _HUE_A2], device=x.device, dtype=x.dtype)  # [3, 3, 3]
            weights = torch.stack([torch.ones_like(theta), theta.cos(), theta.sin()], dim=1)  # [B, 3]
            rotation = torch.einsum("bk,kij->bij", weights, basis)  # [B, 3, 3]
            n_frames = frames.shape[1]
            pixels = frames.reshape(batch, n_frames, 3, height * width)
            frames = torch.matmul(rotation.unsqueeze(1), pixels).clamp_(0.0, 1.0)  # [B, F, 3, H*W]
            owned = True
        if not owned:
            return _copy(x)
        return frames.reshape(batch, channels, height, width)


@register_augmentation("gray")
class Grayscale(Augmentation):
    """With probability ``p`` per sample, replace every RGB frame by its luminance.

    The luminance (BT.601 weights) is replicated over the frame's 3 channels, so the shape is
    unchanged. Gray stacks (``C`` not a multiple of 3) are returned unchanged (as a copy).

    :param p: probability of converting a sample, in [0, 1].
    """

    name = "grayscale"
    spec_params = ("p",)

    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        self.p = _check_float("Grayscale", "p", p, 0.0, 1.0)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        batch, channels, height, width = x.shape
        frames, rgb = _split_frames(x)
        # Draw even for gray input so that the RNG stream does not depend on the channel count.
        chosen = torch.rand(batch, generator=generator, device=x.device) < self.p
        if not rgb:
            return x if inplace else _copy(x)
        luma = _luma(frames)  # [B, F, 1, H, W], broadcast over the 3 channels of each frame
        chosen = chosen.view(batch, 1, 1, 1, 1)
        out = torch.where(chosen, luma, frames, out=_output_buffer(x, frames.shape))  # [B, F, 3, H, W]
        return out.reshape(batch, channels, height, width)


@register_augmentation("erase")
class Cutout(Augmentation):
    """Random erasing: with probability ``p`` per sample, fill one rectangle with ``value``.

    The rectangle covers a fraction ``U(scale[0], scale[1])`` of the frame, its aspect ratio
    (height / width) is log-uniform in [0.3, 3.3] like torchvision's ``RandomErasing``, its side
    lengths are clipped to the frame and its position is uniform. The same rectangle is
    erased in every channel of the sample.

    :param p: probability of erasing in a sample, in [0, 1].
    :param scale: ``(min, max)`` area fraction, ``0 < min <= max <= 1``.
    :param value: fill value in [0, 1].
    """

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
        kwargs = dict(values)
        default = cls()
        scale = (kwargs.pop("min_scale", default.min_scale), kwargs.pop("max_scale", default.max_scale))
        return cls(scale=scale, **kwargs)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None, inplace: bool) -> torch.Tensor:
        batch, _, height, width = x.shape
        # Parameters in float32 whatever x's dtype: float16 would round the rectangle sizes.
        u = torch.rand(5, batch, generator=generator, device=x.device)
        erase = u[0] < self.p
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
        mask = in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None]  # [B, H, W]
        mask = mask.unsqueeze(1)  # [B, 1, H, W], broadcast over channels
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


# ----------------------------------------------------------------------------- composition


class Compose(Augmentation):
    """Apply augmentations in order, passing the same generator to each.

    Steps after the first one that produced a new tensor work in place on that intermediate
    (never on the caller's input, and never on tensors that require grad), which saves one
    full-size allocation per step.

    :param augmentations: modules whose ``forward`` accepts ``(x, generator=...)``; usually
        :class:`Augmentation` instances. An empty sequence is the identity.
    """

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
                out = module(x, generator=generator)
                owned = False  # unknown module: its output may alias anything
            if out.requires_grad and torch.is_grad_enabled():
                # Autograd raises when an in-place op overwrites a tensor saved for backward. The
                # built-in steps happen not to (tested), but images rarely need gradients, so
                # staying out of place there costs nothing that matters.
                owned = False
            x = out
        return x

    def spec_values(self) -> dict[str, SpecValue]:
        return {}

    @property
    def spec(self) -> str:
        """Normalised spec, e.g. ``"shift(4),intensity(0.1)"``; ``"identity"`` when empty.

        :raises ValueError: if a step is not an :class:`Augmentation`.
        """
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


# ----------------------------------------------------------------------------- spec parser


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
    items.append(spec[start:])
    return items


def _parse_item(spec: str, item: str) -> Augmentation:
    match = _ITEM_RE.fullmatch(item)
    if not item.strip():
        raise _spec_error(spec, "empty item (check for a stray comma)")
    if match is None:
        raise _spec_error(spec, f"malformed item {item.strip()!r}; write name or name(number, ...)")
    raw_name, raw_args = match.group(1), match.group(2)
    name = AUGMENTATION_ALIASES.get(raw_name.lower(), raw_name.lower())
    if name not in AUGMENTATIONS:
        raise _spec_error(spec, f"unknown augmentation {raw_name!r}; {_known_names()}")
    cls = AUGMENTATIONS[name]
    params = cls.spec_params
    signature = f"{name}({', '.join(params)})" if params else name
    values: dict[str, SpecValue] = {}
    args = [] if raw_args is None or not raw_args.strip() else raw_args.split(",")
    if len(args) > len(params):
        raise _spec_error(
            spec, f"{name} takes at most {len(params)} argument(s), {signature}, got {len(args)}"
        )
    seen_keyword = False
    for position, arg in enumerate(args):
        arg_match = _ARG_RE.fullmatch(arg)
        if arg_match is None:
            raise _spec_error(
                spec, f"bad argument {arg.strip()!r} to {name}: arguments are numbers, {signature}"
            )
        keyword, number = arg_match.group(1), arg_match.group(2)
        if keyword is None:
            if seen_keyword:
                raise _spec_error(spec, f"positional argument {number!r} after a keyword argument in {name}")
            param = params[position]
        else:
            seen_keyword = True
            if keyword not in params:
                raise _spec_error(spec, f"{name} has no argument {keyword!r}; it takes {signature}")
            param = keyword
        if param in values:
            raise _spec_error(spec, f"argument {param!r} of {name} given twice")
        if param in cls.int_params:
            if _INT_RE.fullmatch(number) is None:
                raise _spec_error(spec, f"{name}: {param!r} must be an integer, got {number!r}")
            values[param] = int(number)
        else:
            values[param] = float(number)
    try:
        return cls.from_spec_values(values)
    except ValueError as err:
        raise _spec_error(spec, f"{name}: {err}") from None


def make_augmentation(spec: str) -> Compose:
    """Build a :class:`Compose` from a comma-separated spec string.

    Grammar (whitespace allowed between tokens, names case-insensitive)::

        spec   := item ("," item)*
        item   := name [ "(" [ arg ("," arg)* ] ")" ]
        arg    := [ param "=" ] number          (positional arguments first)
        number := integer or decimal, e.g. 4, 0.1, 1e-3 (no eval: matched by a regex)

    Names and their arguments, in positional order (all optional):

    * ``shift(pad=4)`` -> :class:`RandomShift`
    * ``crop(size, pad=4)`` -> :class:`RandomCrop`; ``crop(84)`` sets ``size=84``
    * ``intensity(scale=0.1)`` -> :class:`Intensity`
    * ``jitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0)`` (alias ``color_jitter``)
      -> :class:`ColorJitter`
    * ``grayscale(p=0.2)`` (alias ``gray``) -> :class:`Grayscale`
    * ``cutout(p=0.5, min_scale=0.02, max_scale=0.2, value=0.0)`` (alias ``erase``) -> :class:`Cutout`
    * ``identity`` (alias ``none``) -> :class:`Identity`

    The result's :attr:`Compose.spec` is the normalised spec, with every argument written out,
    and ``make_augmentation(aug.spec)`` builds an equal pipeline.

    :param spec: e.g. ``"shift,intensity"``, ``"crop(84),jitter(0.4)"``, ``"shift(8)"``, ``"none"``.
    :return: the pipeline, applied to [B, C, H, W] images.
    :raises ValueError: on an empty or malformed spec, an unknown name, a wrong argument count
        or an out-of-range value; the message says what is wrong and shows a valid spec.
    """
    if not isinstance(spec, str):
        raise ValueError(f"make_augmentation: spec must be a string such as {_EXAMPLE_SPEC!r}, got {spec!r}.")
    if not spec.strip():
        raise _spec_error(spec, f"the spec is empty (use 'none' for no augmentation; {_known_names()})")
    return Compose([_parse_item(spec, item) for item in _split_top_level(spec)])


def check_frame_size(augmentation: nn.Module, height: int, width: int) -> None:
    """Refuse augmentations that do nothing (or cannot run) on ``height x width`` frames.

    ``crop(N)`` with ``N`` at or above the frame size crops the whole frame and is the
    identity; ``shift(0)`` never moves; ``crop(pad=p)`` needs ``2 p`` below the frame size.
    A pipeline whose augmentations all do nothing would make every view the same image.

    :raises ValueError: saying which member is the problem and what to use instead.
    """
    members = list(augmentation) if isinstance(augmentation, Compose) else [augmentation]
    for member in members:
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
