"""One base class for user errors, so that every CLI treats them alike."""

from __future__ import annotations

import pytest

from relic_rl.ablation.grid import GridError
from relic_rl.ablation.train_args import AblateError
from relic_rl.algorithms import MissingExtraError
from relic_rl.environments.errors import EnvCreationError
from relic_rl.errors import EXIT_USAGE, UserError
from relic_rl.presets import PresetError
from relic_rl.report import ReportError
from relic_rl.runs import UsageError
from relic_rl.train import USER_ERRORS


@pytest.mark.parametrize(
    "error",
    [UsageError, PresetError, EnvCreationError, AblateError, GridError, ReportError, MissingExtraError],
)
def test_every_user_error_is_a_user_error_and_still_a_value_error(error: type[Exception]) -> None:
    assert issubclass(error, UserError) and issubclass(error, ValueError)
    assert isinstance(error("x"), USER_ERRORS)
    assert error.exit_code == EXIT_USAGE == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("module", "error", "command"),
    [
        ("relic_rl.train", UsageError, "python -m relic_rl.train --help"),
        ("relic_rl.evaluate", UsageError, "python -m relic_rl.evaluate --help"),
        ("relic_rl.ablate", AblateError, "python -m relic_rl.ablate --help"),
    ],
)
def test_each_cli_parser_raises_its_user_error_naming_its_help(
    module: str, error: type[UserError], command: str
) -> None:
    import importlib

    from relic_rl.cli_types import UserErrorParser

    parser = importlib.import_module(module).build_parser()
    assert isinstance(parser, UserErrorParser)
    with pytest.raises(error, match=f"See `{command}`") as caught:
        parser.parse_args(["--no-such-flag"])
    assert caught.value.exit_code == EXIT_USAGE


def test_a_contrib_algo_without_sb3_contrib_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from relic_rl import train
    from relic_rl.algorithms import ALGORITHMS

    # As if sb3-contrib were not installed: its import fails, and relic_rl.contrib is re-imported.
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)
    monkeypatch.delitem(sys.modules, "relic_rl.contrib", raising=False)
    assert "tqc" in ALGORITHMS and "ppo_lstm" in list(ALGORITHMS)  # the names stay known
    with pytest.raises(
        MissingExtraError,
        match=r"--algo tqc needs the packages of relic-rl.s contrib extra.*pip install .relic-rl\[contrib\]",
    ):
        ALGORITHMS["tqc"]
    code = train.main(
        ["--env", "tests.fake_pixel_env:FakePixel-v0", "--algo", "qrdqn", "--log-dir", "unused"]
    )
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert 'pip install "relic-rl[contrib]"' in err and "Traceback" not in err
