"""Progress of an ablation: start and end lines with the overall count, and on a terminal a live
block (rich) of the active runs above which they are printed."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

__all__ = ["Progress"]

_BAR = 24


@dataclass
class _Active:
    verb: str
    timesteps: int
    total: int


class Progress:
    """Start/end lines, and a live block of the active runs (``live``; default: when ``stream``, stdout
    by default, is a terminal). ``total`` runs to do now; ``already`` finished before, counted."""

    def __init__(
        self, total: int, *, already: int = 0, stream: TextIO | None = None, live: bool | None = None
    ):
        self.stream = stream if stream is not None else sys.stdout
        self.total = total + already
        self.finished = already
        self.failed = self.interrupted = 0
        self._active: dict[str, _Active] = {}
        self._lock = threading.RLock()
        self._live: Live | None = None
        if live if live is not None else bool(getattr(self.stream, "isatty", lambda: False)()):
            console = Console(file=self.stream, highlight=False, soft_wrap=True)
            self._live = Live(self._render(), console=console, refresh_per_second=2, transient=True)
            self._live.start()

    def overall(self) -> str:
        """``"k/n finished, f failed[, i interrupted], r running"``."""
        parts = [f"{self.finished}/{self.total} finished", f"{self.failed} failed"]
        if self.interrupted:
            parts.append(f"{self.interrupted} interrupted")
        parts.append(f"{len(self._active)} running")
        return ", ".join(parts)

    def _print(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(Text(text))
            self._live.update(self._render())
        else:
            print(text, file=self.stream, flush=True)

    def _render(self) -> Group:
        lines = []
        for name, run in self._active.items():
            if run.total > 0:
                frac = min(1.0, run.timesteps / run.total)
                bar = "#" * round(frac * _BAR) + "." * (_BAR - round(frac * _BAR))
                lines.append(f"  {name}  [{bar}] {run.timesteps:,}/{run.total:,} ({frac:.0%})")
            else:
                lines.append(f"  {name}  {run.verb}...")
        return Group(*map(Text, [*lines, self.overall()]))

    def started(self, name: str, verb: str = "started") -> None:
        """A run started (``verb``: ``"started"`` or ``"resumed"``)."""
        with self._lock:
            self._active[name] = _Active(verb, 0, 0)
            self._print(f"{verb:>9}  {name}  ({self.overall()})")

    def update(self, name: str, timesteps: int, total: int) -> None:
        with self._lock:
            if name in self._active:
                self._active[name].timesteps, self._active[name].total = timesteps, total
                if self._live is not None:
                    self._live.update(self._render())

    def ended(self, name: str, state: str, detail: str = "") -> None:
        """A run ended in ``state`` (finished, failed, interrupted, not started)."""
        with self._lock:
            self._active.pop(name, None)
            if state == "finished":
                self.finished += 1
            elif state == "failed":
                self.failed += 1
            else:
                self.interrupted += 1
            suffix = f": {detail}" if detail else ""
            self._print(f"{state:>9}  {name}{suffix}  ({self.overall()})")

    def close(self) -> None:
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None
