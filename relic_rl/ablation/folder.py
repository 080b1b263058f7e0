"""The ablation folder: its layout, its lock, and what an existing folder already holds.

::

    OUT/
      ablation.yaml         env_id, total_timesteps, seeds, grid, baseline, train_args, command
      cells/<cell>.yaml     variant, params, seed (copied into the run folder as cell.yaml)
      runs/<cell>/          a relic_rl.train run folder (+ cell.yaml) written from the cell's resolved
                            config; its process runs ``python -m relic_rl.train --resume runs/<cell>``
      logs/<cell>.log       stdout and stderr of the cell's training processes (appended)
      attic/<cell>__<time>/ an unfinished run without a checkpoint, moved aside when it starts over
      results.csv, summary.md, curves.png, curves.pdf   the report (relic_rl.report)
      hparams/<cell>/       TensorBoard HParams export of the report's numbers
      .ablate.lock          held while an ablation (or one of its runs) works in OUT

A cell's state comes from its run folder: ``new`` (no folder), ``finished`` (never touched again),
``resume`` (unfinished with a checkpoint) or ``restart`` (unfinished before its first checkpoint:
moved to the attic, starts over). A ``running`` status is stale once the ablation holds the lock:
local runs inherit it, and those of Ray tasks die with their worker, which dies with its ablation.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from relic_rl import runs
from relic_rl.ablation.grid import same_value
from relic_rl.ablation.train_args import AblateError, plain
from relic_rl.run_files import CELL_FILE

__all__ = [
    "ABLATION_FILE",
    "ATTIC_DIR",
    "CELLS_DIR",
    "CELL_FILE",
    "LOCK_FILE",
    "LOGS_DIR",
    "RUNS_DIR",
    "CellState",
    "acquire_lock",
    "check_out_dir",
    "config_diff",
    "copy_cell_file",
    "inspect_run",
    "move_to_attic",
    "write_yaml_once",
]

ABLATION_FILE = "ablation.yaml"
RUNS_DIR, CELLS_DIR, LOGS_DIR = "runs", "cells", "logs"
LOCK_FILE = ".ablate.lock"
ATTIC_DIR = "attic"

CellState = Literal["new", "resume", "restart", "finished"]
_ABSENT = object()


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Dotted keys whose values differ (``meta`` ignored), as ``(key, old, new)``; absent: ``None``."""
    a, b = (_flatten({k: v for k, v in plain(d).items() if k != "meta"}) for d in (old, new))
    keys = sorted(set(a) | set(b))
    return [(k, a.get(k), b.get(k)) for k in keys if not same_value(a.get(k, _ABSENT), b.get(k, _ABSENT))]


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise AblateError(f"{path} cannot be read: {err}") from None


def check_out_dir(out: Path, identity: Mapping[str, Any]) -> None:
    """Accept a new or empty folder ``out``, or one whose ``ablation.yaml`` holds this ``identity``;
    else AblateError (for another ablation, saying which keys differ)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise AblateError(f"--out {out} is a file, not a folder; pick another --out.")
    path = out / ABLATION_FILE
    if not path.is_file():
        if any(p.name != LOCK_FILE for p in out.iterdir()):
            raise AblateError(
                f"--out {out} is not empty and holds no {ABLATION_FILE}, so it is not an ablation folder; "
                "pick another (new or empty) --out."
            )
        return
    stored = _read_yaml(path)
    if not isinstance(stored, dict):
        raise AblateError(f"{path} is not a YAML mapping; pick another --out.")
    ours = plain(identity)
    differ = [k for k in ours if plain(stored.get(k)) != ours[k]]
    if differ:
        details = "; ".join(f"{k}: {stored.get(k)!r} there, {ours[k]!r} now" for k in differ)
        raise AblateError(
            f"--out {out} holds another ablation ({details}). Re-run the same command to continue it, "
            "or pick another --out for this one."
        )


def inspect_run(run_dir: Path, config: Mapping[str, Any], name: str) -> tuple[CellState, str, int]:
    """``(state, detail, timesteps done)`` of a cell's run folder, whose ``config.yaml`` must be
    ``config``: a changed config or a foreign folder is an AblateError."""
    if not run_dir.exists():
        return "new", "", 0
    if not (run_dir / runs.CONFIG_FILE).is_file():  # an empty folder, or one with only cell.yaml, is new
        leftovers = sorted(p.name for p in run_dir.iterdir() if p.name != CELL_FILE)
        if not leftovers:
            return "new", "", 0
        raise AblateError(
            f"{run_dir} holds {', '.join(leftovers)} but no {runs.CONFIG_FILE}, so it is not a training run "
            "of this ablation; move it away and re-run."
        )
    stored = _read_yaml(run_dir / runs.CONFIG_FILE)
    diffs = config_diff(stored if isinstance(stored, dict) else {}, config)
    if diffs:
        listing = "; ".join(f"{k}: {old!r} in the folder, {new!r} now" for k, old, new in diffs)
        raise AblateError(
            f"The run folder {run_dir} was trained with another config than cell {name} resolves to now "
            f"({listing}). Runs with different configs are never mixed: restore the previous settings "
            "(presets, flags) or pick another --out."
        )
    try:
        status = runs.read_status(run_dir)
    except (runs.UsageError, OSError):
        status = runs.RunStatus("running", 0, 0)
    if status.state == "finished":
        return "finished", "", 0
    state = "running, no live process" if status.state == "running" else status.state
    checkpoint = runs.latest_checkpoint(run_dir)
    if checkpoint is None and not runs.only_startup_files(run_dir):
        detail = f"{state} before its first checkpoint: starts over, the folder goes to {ATTIC_DIR}/"
        return "restart", detail, 0
    done = checkpoint.timesteps if checkpoint is not None else 0
    return "resume", f"{state}, resumes at {done:,}/{status.total_timesteps:,} steps", done


def write_yaml_once(path: Path, data: Any) -> None:
    """Write ``data`` as YAML, atomically, unless the file already holds exactly that text."""
    text = runs.dump_yaml(data)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        runs.atomic_write_text(path, text)


def copy_cell_file(out: Path, name: str) -> None:
    """Put ``cell.yaml`` into the cell's run folder once it holds a ``config.yaml``, unless identical."""
    run_dir = out / RUNS_DIR / name
    source = out / CELLS_DIR / f"{name}.yaml"
    target = run_dir / CELL_FILE
    holds_run = source.is_file() and (run_dir / runs.CONFIG_FILE).is_file()
    if holds_run and (not target.is_file() or target.read_bytes() != source.read_bytes()):
        runs.atomic_write_text(target, source.read_text(encoding="utf-8"))


def move_to_attic(out: Path, name: str) -> Path:
    """Move the run folder of a cell that starts over to ``OUT/attic/<cell>__<time>``; return it."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    attic = out / ATTIC_DIR
    attic.mkdir(parents=True, exist_ok=True)
    target = attic / f"{name}__{stamp}"
    suffix = 1
    while target.exists():
        suffix += 1
        target = attic / f"{name}__{stamp}-{suffix}"
    os.replace(out / RUNS_DIR / name, target)
    return target


@contextlib.contextmanager
def acquire_lock(out: Path) -> Iterator[int]:
    """Hold ``OUT/.ablate.lock`` (an exclusive ``flock``) and yield its fd, which training subprocesses
    inherit; AblateError when another ablation, or a run of an earlier one, holds it."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AblateError(
                f"Another ablation (or a training run it started) is working in {out}; wait for it to end "
                f"or stop it first (the lock is {out / LOCK_FILE})."
            ) from None
        yield fd
    finally:
        os.close(fd)
