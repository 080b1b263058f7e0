"""Argparse helpers shared by the command-line tools: a parser raising user errors, and value types."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, NoReturn

from relic_rl.errors import UserError


class UserErrorParser(argparse.ArgumentParser):
    """An ArgumentParser that raises ``error_class`` (a :class:`UserError` subclass) instead of
    printing usage and exiting, so that each CLI's ``main`` reports every mistake the same way."""

    def __init__(self, *args: Any, error_class: type[UserError] = UserError, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error_class = error_class

    def error(self, message: str) -> NoReturn:
        command = self.prog if self.prog.startswith("python") else f"python -m {self.prog}"
        raise self.error_class(f"{message}. See `{command} --help`.")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """Parser of integers >= ``minimum`` (``1e5`` is accepted as 100000)."""

    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            value = math.nan  # not an integer either
        if not value.is_integer() or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return int(value)

    parse.__name__ = "int"  # argparse names the type in its messages
    return parse


def float_at_least(minimum: float, strict: bool = False) -> Callable[[str], float]:
    """Parser of finite numbers >= ``minimum`` (> with ``strict``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(
                f"expected a number {'>' if strict else '>='} {minimum:g}, got {text!r}"
            )
        return value

    parse.__name__ = "float"
    return parse
