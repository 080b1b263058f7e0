"""Test-session settings shared by every test module."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import torch

# Tests check correctness, not speed. With `pytest -n 2` on a 2-core machine each worker
# keeping torch's default thread pool oversubscribes the cores several times over (measured
# 3-7x slower); one thread per worker, and per training subprocess, avoids that.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

# SB3 gives every model without its own logger folder a fresh `SB3-<time>` folder in the
# temporary directory (hundreds over the suite); SB3_LOGDIR sends them all to one place.
_SB3_LOGS = tempfile.mkdtemp(prefix="relic-rl-tests-sb3-")
os.environ.setdefault("SB3_LOGDIR", _SB3_LOGS)
atexit.register(shutil.rmtree, _SB3_LOGS, ignore_errors=True)
