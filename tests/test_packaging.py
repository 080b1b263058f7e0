"""The built wheel carries the YAML presets, so a non-editable install finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_presets_and_type_marker(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("relic_rl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("agents", "envs"):
        shipped = {n for n in names if n.startswith(f"relic_rl/_presets/{kind}/")}
        expected = {f"relic_rl/_presets/{kind}/{p.name}" for p in (ROOT / kind).iterdir() if p.is_file()}
        assert expected and shipped == expected
    assert "relic_rl/py.typed" in names
    assert not any(n.startswith(("tests/", "benchmarks/", "examples/")) for n in names)


def test_rl_zoo3_is_a_benchmark_extra_only() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert any(req.startswith("rl-zoo3") for req in extras["bench"])
    assert not any("zoo" in req for req in project["dependencies"])
    # `all` (what CI and the README's test command install) does not pull it in either.
    assert "bench" not in extras["all"][0] and not any("zoo" in req for req in extras["all"])
