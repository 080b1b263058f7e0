"""Test-session settings shared by every test module."""

from __future__ import annotations

import os

import torch

# Tests check correctness, not speed. With `pytest -n 2` on a 2-core machine each worker
# keeping torch's default thread pool oversubscribes the cores several times over (measured
# 3-7x slower); one thread per worker, and per training subprocess, avoids that.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
