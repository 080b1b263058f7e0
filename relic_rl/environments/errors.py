"""The error raised for every env that cannot be built as asked."""

from __future__ import annotations

from relic_rl.errors import UserError


class EnvCreationError(UserError):
    """An env cannot be created; the message says what was asked, what went wrong and what to do."""


BOX2D_HINT = 'CarRacing needs Box2D and pygame: pip install "relic-rl[box2d]" (Box2D builds need swig).'
ATARI_HINT = 'Atari envs need ale-py (with its bundled ROMs): pip install "relic-rl[atari]".'
