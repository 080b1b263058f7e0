"""The user-error base class and the exit codes shared by the command-line tools.

Every mistake that is the user's to fix (a bad flag, preset, env id, grid or folder) raises a
subclass of :class:`UserError`, whose message is one paragraph saying what is wrong, what was
expected and how to fix it. The CLIs print it as ``error: <message>`` and exit with
:data:`EXIT_USAGE`; anything else is a bug or a failed run and keeps its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
#: A run (or some runs of an ablation) failed.
EXIT_FAILED = 1
#: A user error: one paragraph on stderr, nothing trained.
EXIT_USAGE = 2
#: Stopped by Ctrl-C (128 + SIGINT), after saving what could be saved.
EXIT_INTERRUPTED = 130


class UserError(ValueError):
    """A mistake in what the user asked for; the CLIs print it and exit with :data:`EXIT_USAGE`.

    A ``ValueError``, so that library callers that catch ``ValueError`` keep working.
    """

    exit_code = EXIT_USAGE
