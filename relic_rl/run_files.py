"""The names of a run folder's files and the reader of its evaluation CSVs.

One place for what :mod:`relic_rl.runs` writes and what :mod:`relic_rl.report` and the ablation
read. Only the standard library, so that the report does not load torch to read a CSV.
"""

from __future__ import annotations

import csv
from pathlib import Path

CONFIG_FILE = "config.yaml"
COMMAND_FILE = "command.txt"
STATUS_FILE = "status.yaml"
EVAL_FILE = "evaluations.csv"
RANDOMIZED_EVAL_FILE = "evaluations_randomized.csv"
FINAL_MODEL_FILE = "final_model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
CHECKPOINT_DIR = "checkpoints"
TB_DIR = "tb"
MONITOR_DIR = "monitor"
#: Held (``flock``) by the process that trains in the folder; holds that process's PID.
LOCK_FILE = ".train.lock"
EVAL_HEADER = ("timesteps", "mean_reward", "std_reward", "episode_rewards")
#: The ablation's description of a cell, in the cell's run folder.
CELL_FILE = "cell.yaml"


def read_evaluation_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows of an evaluations CSV (``([], [])`` for an empty file).

    :raises OSError: when the file cannot be read.
    """
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def read_evaluation_rows(path: Path) -> list[dict[str, str]]:
    """The rows of an evaluations CSV (empty when the file does not exist)."""
    return read_evaluation_table(path)[1] if path.is_file() else []
