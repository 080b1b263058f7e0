"""Export an ablation to TensorBoard's HParams dashboard: ``tensorboard --logdir OUT/hparams``.

One TensorBoard run per training run (parameters, seed, variant; final and average returns), rebuilt
each time (written beside, swapped in)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from relic_rl import stats
from relic_rl.ablation.grid import format_value
from relic_rl.report import Ablation

__all__ = ["HPARAMS_DIR", "write_hparams"]

HPARAMS_DIR = "hparams"


def _hparam(value: Any) -> bool | int | float | str:
    """Lists, mappings and None as written in variant names."""
    return value if isinstance(value, (bool, int, float, str)) else format_value(value)


def write_hparams(ablation: Ablation) -> Path | None:
    """Write ``OUT/hparams/<cell>/`` event files for every evaluated run of a loaded ablation; return
    the folder, or ``None`` when no run has evaluations."""
    if not ablation.runs:
        return None
    from torch.utils.tensorboard import SummaryWriter

    target = ablation.path / HPARAMS_DIR
    staging = Path(tempfile.mkdtemp(prefix=f".{HPARAMS_DIR}.", dir=ablation.path))
    try:
        keys = sorted({k for run in ablation.runs for k in run.params})
        for run in ablation.runs:
            hparams: dict[str, bool | int | float | str] = {"variant": run.variant, "seed": run.seed}
            # Every key in every run ("" when absent), so that TensorBoard shows one table.
            hparams.update({k: _hparam(run.params.get(k, "")) for k in keys})
            curve = run.evaluation
            auc = stats.area_under_curve(curve.timesteps, curve.mean_returns)
            metrics = {"hparams/final_return": curve.final_return, "hparams/mean_return_over_training": auc}
            if run.randomized is not None:
                metrics["hparams/randomized_final_return"] = run.randomized.final_return
            with SummaryWriter(log_dir=str(staging)) as writer:
                writer.add_hparams(hparams, metrics, run_name=run.name, global_step=curve.final_timestep)
        # The SummaryWriter also leaves an empty event file at the top; only the runs matter.
        for stray in staging.glob("events.out.tfevents.*"):
            stray.unlink()
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
