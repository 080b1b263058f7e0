"""What the benchmarks print about the machine they ran on (imported by the scripts here)."""

from __future__ import annotations

import platform
import subprocess


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, falling back to lscpu, then to platform."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
