"""Cost of the image augmentations relative to one NatureCNN forward + backward pass.

Run with ``python benchmarks/bench_augmentations.py [--threads 2] [--reps 9]``.

Absolute times on shared machines drift, so every figure is a ratio measured side by side
(same-run ratios, interleaved, medians): for each batch shape and augmentation spec the script alternates
augmentation, CNN step, augmentation, CNN step ... after a warm-up and reports the median
ratio with its min-max range. The CNN step is SB3's ``NatureCNN`` (features_dim 512) on the
same batch, ``features.sum().backward()``. A second table compares ways of implementing the
random shift against :func:`relic_rl.augmentations.shift_images` (one ``gather`` into a
NumPy-allocated, huge-page-backed output) on identical offsets; its first row is the same
gather into a torch-allocated output, which isolates the effect of the buffer.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import stable_baselines3
import torch
import torch.nn.functional as F
from gymnasium import spaces
from machine import cpu_model
from stable_baselines3.common.torch_layers import NatureCNN

from relic_rl.augmentations import make_augmentation, shift_images

SHAPES: tuple[tuple[int, int, int, int], ...] = ((256, 6, 84, 84), (128, 2, 64, 64))
SPECS: tuple[str, ...] = ("shift", "shift,intensity")
PAD = 4


def timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(
    a: Callable[[], object], b: Callable[[], object], reps: int, warmup: int
) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` alternately, ``reps`` times each after ``warmup`` untimed pairs.

    :return: the per-repetition seconds of ``a`` and of ``b``.
    """
    for _ in range(warmup):
        a()
        b()
    times_a, times_b = [], []
    for _ in range(reps):
        times_a.append(timed(a))
        times_b.append(timed(b))
    return times_a, times_b


def ratio_summary(times_a: list[float], times_b: list[float]) -> str:
    """``median [min-max]`` of the paired ratios a / b."""
    ratios = [ta / tb for ta, tb in zip(times_a, times_b, strict=True)]
    return f"{statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]"


# Alternative shift implementations, for the comparison table only. All take signed offsets
# in [-PAD, PAD] and produce the replicate-padded translation that shift_images computes.


def shift_grid_sample(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """DrQ-style: replicate pad, then one bilinear ``grid_sample`` at pixel-aligned positions."""
    batch, _, height, width = x.shape
    padded = F.pad(x, (PAD, PAD, PAD, PAD), mode="replicate")
    hp, wp = height + 2 * PAD, width + 2 * PAD
    # Normalised centre of padded pixel k (align_corners=False) is (2k + 1) / size - 1.
    ys = (2 * (torch.arange(height, device=x.device) + PAD + dy[:, None]) + 1) / hp - 1  # [B, H]
    xs = (2 * (torch.arange(width, device=x.device) + PAD + dx[:, None]) + 1) / wp - 1  # [B, W]
    grid = torch.stack(
        [xs[:, None, :].expand(batch, height, width), ys[:, :, None].expand(batch, height, width)], dim=-1
    ).to(x.dtype)
    return F.grid_sample(padded, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def shift_unfold(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Replicate pad, view every H x W window with ``unfold``, pick one per sample."""
    batch, _, height, width = x.shape
    padded = F.pad(x, (PAD, PAD, PAD, PAD), mode="replicate")
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)  # [B, C, 2P+1, 2P+1, H, W]
    return windows[torch.arange(batch, device=x.device), :, dy + PAD, dx + PAD]


def shift_advanced_indexing(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Advanced indexing with clamped row/column indices broadcast to [B, C, H, W]."""
    batch, channels, height, width = x.shape
    rows = (torch.arange(height, device=x.device) + dy[:, None]).clamp_(0, height - 1)
    cols = (torch.arange(width, device=x.device) + dx[:, None]).clamp_(0, width - 1)
    b = torch.arange(batch, device=x.device)[:, None, None, None]
    c = torch.arange(channels, device=x.device)[None, :, None, None]
    return x[b, c, rows[:, None, :, None], cols[:, None, None, :]]


def shift_gather_torch_alloc(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """The same gather as shift_images, but into an output that torch allocates itself.

    Separates the two choices shift_images makes: the kernel and the huge-page output buffer.
    """
    batch, channels, height, width = x.shape
    rows = (torch.arange(height, device=x.device) + dy[:, None]).clamp_(0, height - 1)
    cols = (torch.arange(width, device=x.device) + dx[:, None]).clamp_(0, width - 1)
    index = (rows[:, :, None] * width + cols[:, None, :]).view(batch, 1, -1).expand(batch, channels, -1)
    return x.reshape(batch, channels, -1).gather(2, index).view(batch, channels, height, width)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads value")
    parser.add_argument("--reps", type=int, default=11, help="timed A/B pairs per row (>= 7 recommended)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed A/B pairs before timing")
    parser.add_argument("--skip-impl", action="store_true", help="skip the shift implementation table")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"nproc (affinity): {len(os.sched_getaffinity(0))}, os.cpu_count(): {os.cpu_count()}")
    print(f"CPU: {cpu_model()}")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, SB3 {stable_baselines3.__version__}"
    )
    print(
        f"torch.get_num_threads(): {torch.get_num_threads()}, reps: {args.reps}, warm-up pairs: {args.warmup}"
    )
    print()

    print(
        "| batch [B, C, H, W] | spec | aug ms | aug samples/s | NatureCNN fwd+bwd ms "
        "| aug / fwd+bwd, median [min-max] |"
    )
    print("|---|---|---:|---:|---:|---|")
    for shape in SHAPES:
        space = spaces.Box(0, 255, shape[1:], dtype=np.uint8)
        cnn = NatureCNN(space, features_dim=512)
        x = torch.rand(shape)

        def cnn_step(cnn: NatureCNN = cnn, x: torch.Tensor = x) -> None:
            cnn.zero_grad(set_to_none=True)
            cnn(x).sum().backward()

        for spec in SPECS:
            aug = make_augmentation(spec)
            generator = torch.Generator().manual_seed(0)

            # Augmentations run on observations, outside any autograd graph, as in training.
            @torch.no_grad()
            def aug_step(
                aug: torch.nn.Module = aug, x: torch.Tensor = x, g: torch.Generator = generator
            ) -> None:
                aug(x, generator=g)

            t_aug, t_cnn = interleave(aug_step, cnn_step, args.reps, args.warmup)
            aug_ms = statistics.median(t_aug) * 1e3
            print(
                f"| {list(shape)} | `{aug.spec}` | {aug_ms:.2f} | {shape[0] / (aug_ms / 1e3):,.0f} | "
                f"{statistics.median(t_cnn) * 1e3:.1f} | {ratio_summary(t_aug, t_cnn)} |"
            )

    if args.skip_impl:
        return
    print()
    print("Shift implementations, time relative to the gather used by shift_images (same offsets):")
    print()
    print("| batch [B, C, H, W] | implementation | ms | time / gather, median [min-max] | max abs diff |")
    print("|---|---|---:|---|---:|")
    alternatives = {
        "gather, torch-allocated output": shift_gather_torch_alloc,
        "grid_sample (DrQ)": shift_grid_sample,
        "pad + unfold + index": shift_unfold,
        "advanced indexing": shift_advanced_indexing,
    }
    for shape in SHAPES:
        x = torch.rand(shape)
        dy, dx = torch.randint(-PAD, PAD + 1, (2, shape[0]))

        def reference(x: torch.Tensor = x, dy: torch.Tensor = dy, dx: torch.Tensor = dx) -> torch.Tensor:
            return shift_images(x, dy, dx)

        expected = reference()
        for label, fn in alternatives.items():

            def candidate(
                fn: Callable[..., torch.Tensor] = fn,
                x: torch.Tensor = x,
                dy: torch.Tensor = dy,
                dx: torch.Tensor = dx,
            ) -> torch.Tensor:
                return fn(x, dy, dx)

            diff = (candidate() - expected).abs().max().item()
            t_alt, t_ref = interleave(candidate, reference, args.reps, args.warmup)
            print(
                f"| {list(shape)} | {label} | {statistics.median(t_alt) * 1e3:.2f} | "
                f"{ratio_summary(t_alt, t_ref)} | {diff:.1e} |"
            )
        print(f"| {list(shape)} | gather (shift_images) | {statistics.median(t_ref) * 1e3:.2f} | 1 | 0 |")


if __name__ == "__main__":
    main()
