"""Tests for relic_rl.presets: finding the preset folders, reading YAML, typed dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

import relic_rl
from relic_rl.presets import PresetError, dataclass_from_dict, load_yaml, presets_dir


@dataclass(frozen=True)
class Inner:
    size: int = 3
    name: str = "x"


@dataclass(frozen=True)
class Example:
    steps: int
    lr: float = 3e-4
    flag: bool = False
    title: str = ""
    shape: tuple[int, int] | None = None
    patterns: tuple[str, ...] = ()
    values: list[float] = field(default_factory=list)
    mode: Literal["dummy", "subproc"] = "dummy"
    extra: dict[str, Any] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError("`steps` must be >= 0.")


def test_presets_dir_finds_both_kinds() -> None:
    for kind in ("agents", "envs"):
        folder = presets_dir(kind)
        assert folder.is_dir()
        assert folder.name == kind
    assert (presets_dir("envs") / "default.yaml").is_file()


def test_presets_dir_prefers_the_packaged_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    package = tmp_path / "site" / "relic_rl"
    (package / "_presets" / "envs").mkdir(parents=True)
    monkeypatch.setattr(relic_rl, "__file__", str(package / "__init__.py"))
    assert presets_dir("envs") == (package / "_presets" / "envs").resolve()
    with pytest.raises(PresetError, match=r"Cannot find the 'agents' preset folder.*_presets/agents"):
        presets_dir("agents")


def test_presets_dir_rejects_unknown_kind() -> None:
    with pytest.raises(PresetError, match="Unknown preset kind 'hyper'"):
        presets_dir("hyper")  # type: ignore[arg-type]


def test_load_yaml(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("a: 1\nb: [1, 2]\n")
    assert load_yaml(good) == {"a": 1, "b": [1, 2]}
    empty = tmp_path / "empty.yaml"
    empty.write_text("# only a comment\n")
    assert load_yaml(empty) == {}


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("a: [1, 2\nb: 3\n", r"bad\.yaml: invalid YAML at line \d+, column \d+"),
        ("a: 1\n  b: 2\n", r"bad\.yaml: invalid YAML at line 2"),
        ("- 1\n- 2\n", r"bad\.yaml: the top level must be a mapping.*list"),
        ("just text\n", r"the top level must be a mapping.*str"),
        ("1: a\n", r"top-level keys must be strings"),
    ],
)
def test_load_yaml_errors(tmp_path: Path, text: str, pattern: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(PresetError, match=pattern):
        load_yaml(bad)


def test_load_yaml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"nope\.yaml: file not found"):
        load_yaml(tmp_path / "nope.yaml")


def test_dataclass_from_dict_converts() -> None:
    got = dataclass_from_dict(
        Example,
        {
            "steps": "1e6",  # PyYAML reads 1e6 (no dot) as a string
            "lr": "1e-3",
            "flag": True,
            "shape": [64, 64],
            "patterns": ["A*", "B*"],
            "values": [1, 2.5],
            "mode": "subproc",
            "extra": {"k": [1]},
            "inner": {"size": 5},
            "path": "runs/x",
        },
        "agents/ppo.yaml:Env-v0",
    )
    assert got.steps == 1_000_000 and isinstance(got.steps, int)
    assert got.lr == pytest.approx(1e-3) and isinstance(got.lr, float)
    assert got.shape == (64, 64)
    assert got.patterns == ("A*", "B*")
    assert got.values == [1.0, 2.5]
    assert got.inner == Inner(size=5, name="x")
    assert got.path == Path("runs/x")
    assert dataclass_from_dict(Example, {"steps": 2, "lr": 1}, "w").lr == 1.0
    assert dataclass_from_dict(Example, {"steps": 2, "shape": None}, "w").shape is None


def test_dataclass_from_dict_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(PresetError) as info:
        dataclass_from_dict(Example, {"steps": 1, "learning_rate": 0.1}, "agents/ppo.yaml")
    message = str(info.value)
    assert "agents/ppo.yaml: unknown key 'learning_rate' for Example" in message
    assert "Valid keys: steps, lr, flag, title, shape, patterns, values, mode, extra, inner, path." in message


def test_dataclass_from_dict_nested_unknown_key() -> None:
    with pytest.raises(
        PresetError, match=r"w\.inner: unknown key 'colour' for Inner\. Valid keys: size, name\."
    ):
        dataclass_from_dict(Example, {"steps": 1, "inner": {"colour": 1}}, "w")


def test_dataclass_from_dict_missing_key() -> None:
    with pytest.raises(PresetError, match=r"w: missing required key\(s\) steps for Example"):
        dataclass_from_dict(Example, {"lr": 0.1}, "w")


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"steps": True}, r"w\.steps: expected int, got True \(bool\)"),
        ({"steps": 1.5}, r"w\.steps: expected int, got 1\.5 \(float\)"),
        ({"steps": 1, "lr": "fast"}, r"w\.lr: expected float, got 'fast' \(str\)"),
        ({"steps": 1, "flag": "yes"}, r"w\.flag: expected bool, got 'yes' \(str\)\. Use true or false"),
        ({"steps": 1, "title": 3}, r"w\.title: expected str, got 3 \(int\)"),
        ({"steps": 1, "shape": [64]}, r"w\.shape: expected a list of 2 items \(tuple\[int, int\]\), got 1"),
        ({"steps": 1, "shape": 64}, r"w\.shape: expected tuple\[int, int\], got 64 \(int\)"),
        ({"steps": 1, "shape": [64, "a"]}, r"w\.shape\[1\]: expected int, got 'a'"),
        ({"steps": 1, "patterns": "A*"}, r"w\.patterns: expected tuple\[str, \.\.\.\], got 'A\*'"),
        ({"steps": 1, "mode": "fork"}, r"w\.mode: expected one of 'dummy', 'subproc', got 'fork'"),
        ({"steps": 1, "extra": [1]}, r"w\.extra: expected dict\[str, Any\], got \[1\]"),
        ({"steps": 1, "inner": 3}, r"w\.inner: expected a mapping .* for Inner, got int"),
        ({"steps": -1}, r"w: `steps` must be >= 0\."),
    ],
)
def test_dataclass_from_dict_type_errors(data: dict[str, Any], pattern: str) -> None:
    with pytest.raises(PresetError, match=pattern):
        dataclass_from_dict(Example, data, "w")


def test_dataclass_from_dict_needs_a_mapping_and_a_dataclass() -> None:
    with pytest.raises(
        PresetError, match=r"w: expected a mapping of `key: value` entries for Example, got list"
    ):
        dataclass_from_dict(Example, [1, 2], "w")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expects a dataclass type"):
        dataclass_from_dict(dict, {}, "w")
