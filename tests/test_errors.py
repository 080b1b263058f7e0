"""One base class for user errors, so that every CLI treats them alike."""

from __future__ import annotations

import pytest

from relic_rl.ablation.grid import GridError
from relic_rl.ablation.train_args import AblateError
from relic_rl.environments.errors import EnvCreationError
from relic_rl.errors import EXIT_USAGE, UserError
from relic_rl.presets import PresetError
from relic_rl.report import ReportError
from relic_rl.runs import UsageError
from relic_rl.train import USER_ERRORS


@pytest.mark.parametrize(
    "error", [UsageError, PresetError, EnvCreationError, AblateError, GridError, ReportError]
)
def test_every_user_error_is_a_user_error_and_still_a_value_error(error: type[Exception]) -> None:
    assert issubclass(error, UserError) and issubclass(error, ValueError)
    assert isinstance(error("x"), USER_ERRORS)
    assert error.exit_code == EXIT_USAGE == 2  # type: ignore[attr-defined]
