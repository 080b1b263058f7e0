"""Run Stable-Baselines3's own image tests with ``ReLICExtractor`` as every CNN policy's extractor.

``python tests/sb3_suite/run_sb3_image_tests.py`` downloads the source distribution of the
installed SB3 version (``pip download --no-binary``; it holds SB3's ``tests/``), copies
``tests/test_cnn.py``, ``tests/test_save_load.py`` and ``tests/test_train_eval_mode.py`` into a
temporary folder next to a ``conftest.py`` that makes ``ReLICExtractor`` (auxiliary loss on,
the default ``ReLICConfig``) the default extractor wherever SB3 would build ``NatureCNN``, runs
pytest there and prints the passed / failed / skipped counts. Its exit code is pytest's.

Only this script swaps the extractor: nothing in ``relic_rl`` patches SB3.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SB3_TEST_FILES = ("test_cnn.py", "test_save_load.py", "test_train_eval_mode.py")

#: Written next to SB3's tests: every policy that would build NatureCNN builds ReLICExtractor.
CONFTEST = '''\
"""Swap NatureCNN for relic_rl.ReLICExtractor in every SB3 policy built by these tests."""

import inspect

from stable_baselines3.common import policies
from stable_baselines3.common.torch_layers import NatureCNN

from relic_rl import ReLICExtractor

_init = policies.BaseModel.__init__
_signature = inspect.signature(_init)


def _init_with_relic(self, *args, **kwargs):
    bound = _signature.bind(self, *args, **kwargs)
    if bound.arguments.get("features_extractor_class") is NatureCNN:
        bound.arguments["features_extractor_class"] = ReLICExtractor
    _init(*bound.args, **bound.kwargs)


policies.BaseModel.__init__ = _init_with_relic
'''


def download_tests(version: str, into: Path) -> Path:
    """SB3 ``version``'s sdist, downloaded and unpacked under ``into``; returns its ``tests/``."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"stable-baselines3=={version}",
            "--no-binary",
            ":all:",
            "--no-deps",
            "--quiet",
            "-d",
            str(into),
        ],
        check=True,
    )
    (archive,) = into.glob("stable_baselines3-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    (tests,) = into.glob("stable_baselines3-*/tests")
    return tests


def main(argv: list[str] | None = None) -> int:
    import stable_baselines3

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sb3-version", default=stable_baselines3.__version__, help="default: installed")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest, e.g. -x or -n 2")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sb3-tests-") as tmp:
        source = download_tests(args.sb3_version, Path(tmp) / "sdist")
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        for name in SB3_TEST_FILES:
            shutil.copy(source / name, run_dir / name)
        (run_dir / "conftest.py").write_text(CONFTEST)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *args.pytest_args],
            cwd=run_dir,
            capture_output=True,
            text=True,
        )
    print(result.stdout[-20000:])
    print(result.stderr[-5000:], file=sys.stderr)
    counts = {kind: 0 for kind in ("passed", "failed", "skipped", "errors")}
    # pytest's summary line ("3 passed, 1 skipped in 9.1s"), the last line that looks like one.
    summaries = [line for line in result.stdout.splitlines() if re.search(r"\d+ \w+.* in [\d.]+s", line)]
    last = summaries[-1] if summaries else ""
    for number, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)", last):
        counts["errors" if kind.startswith("error") else kind] = int(number)
    print(
        f"SB3 {args.sb3_version} image tests with ReLICExtractor: {counts['passed']} passed, "
        f"{counts['failed']} failed, {counts['skipped']} skipped, {counts['errors']} errors"
    )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
