"""Run folders: the resolved :class:`RunConfig`, atomic files, status, evaluations, checkpoints.

A run folder (``runs/<env>__<algo>-<aux>__seed<k>__<timestamp>/``) holds::

    config.yaml                   RunConfig.to_dict() plus `meta:` (volatile: time, paths, versions)
    command.txt                   the command line (one more line per resume)
    status.yaml                   {state, timesteps, total_timesteps, message}, written atomically
    tb/                           TensorBoard events (SB3 scalars, relic/*, eval/*) and progress*.csv
    monitor/<rank>.monitor.csv    training episodes (resumed segments: monitor/resume-<k>/)
    evaluations.csv               timesteps,mean_reward,std_reward,episode_rewards
    evaluations_randomized.csv    same columns, domain-randomized env (--eval-domain-randomize)
    checkpoints/model_<T>_steps.zip (+ vecnormalize_<T>_steps.pkl)
    final_model.zip (+ vecnormalize.pkl)

Files others may read during a run are written to a temporary name and renamed (never half-seen).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from relic_rl.agent_config import AgentConfig, as_bool, as_int, as_mapping, parse_agent_config
from relic_rl.algorithms import ALGORITHMS
from relic_rl.config import ReLICConfig
from relic_rl.environments import EnvPreset, strip_module
from relic_rl.environments.factory import VEC_ENV_KINDS
from relic_rl.errors import UserError
from relic_rl.presets import PresetError, dataclass_from_dict

# Re-exported (``X as X``): the file names stay importable from here.
from relic_rl.run_files import (
    CELL_FILE as CELL_FILE,
    CHECKPOINT_DIR as CHECKPOINT_DIR,
    COMMAND_FILE as COMMAND_FILE,
    CONFIG_FILE as CONFIG_FILE,
    EVAL_FILE as EVAL_FILE,
    EVAL_HEADER as EVAL_HEADER,
    FINAL_MODEL_FILE as FINAL_MODEL_FILE,
    LOCK_FILE as LOCK_FILE,
    MONITOR_DIR as MONITOR_DIR,
    RANDOMIZED_EVAL_FILE as RANDOMIZED_EVAL_FILE,
    STATUS_FILE as STATUS_FILE,
    TB_DIR as TB_DIR,
    VECNORMALIZE_FILE as VECNORMALIZE_FILE,
    read_evaluation_rows as read_evaluation_rows,
)


class UsageError(UserError):
    """A mistake in what the user asked for; the CLIs print it and exit 2."""


#: A run folder's files before training writes anything (only then may a checkpoint-less resume start over).
STARTUP_FILES = frozenset({CONFIG_FILE, COMMAND_FILE, STATUS_FILE, LOCK_FILE, CELL_FILE})

RunState = Literal["running", "finished", "failed", "interrupted"]
RUN_STATES: tuple[str, ...] = ("running", "finished", "failed", "interrupted")
#: ``--aux`` values: an auxiliary objective (``relic.objective``) or ``none`` (``relic.enabled: false``).
AUX_CHOICES: tuple[str, ...] = ("relic", "none", "curl")


def aux_name(relic: ReLICConfig) -> str:
    """The ``--aux`` value of a ReLIC config: its objective when enabled, else ``"none"``."""
    return relic.objective if relic.enabled else "none"


DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")


#: Run folders whose lock this process holds (the lock is re-entrant within a process).
_HELD_LOCKS: dict[Path, int] = {}


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock while training: a re-entrant ``flock`` on :data:`LOCK_FILE` (holding the
    PID), not inherited by env workers, freed however the process ends; UsageError if held."""
    key = Path(run_dir).resolve()
    if key in _HELD_LOCKS:
        yield
        return
    key.mkdir(parents=True, exist_ok=True)
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise UsageError(
                f"{run_dir} is in use: process {owner} is training in it. Two processes training in one "
                f"run folder would overwrite each other's checkpoints and final model. Wait for it to "
                f"finish (or stop it with Ctrl-C or `kill {owner}`, which saves a checkpoint), then "
                f"resume with `python -m relic_rl.train --resume {run_dir}`."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD_LOCKS[key] = fd
        try:
            yield
        finally:
            del _HELD_LOCKS[key]
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temporary file beside ``path`` (removed if it fails), then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        mask = os.umask(0o022)  # reading the umask means setting it
        os.umask(mask)
        # mkstemp creates the file 0600; a run's files follow the umask like any other file.
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def dump_yaml(data: Any) -> str:
    """Block-style YAML, keys in the given order."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """Read a YAML mapping; UsageError (naming ``what``) if missing, unreadable or not a mapping."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist ({what}).") from None
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"{path} cannot be read ({what}): {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a YAML mapping ({what}).")
    return data


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run (no paths, times or versions: see ``meta``).

    :param env_id: gymnasium env id (``module:EnvId`` allowed).
    :param algo: key of :data:`relic_rl.algorithms.ALGORITHMS`.
    :param aux: ``"relic"``, ``"curl"`` or ``"none"`` (the same pipeline without the auxiliary loss).
    :param seed: of the model and the training envs (evaluation: ``seed + 10_000``, ``+ 20_000``).
    :param vec_env: ``"dummy"`` or ``"subproc"``.
    :param device: ``"auto"``, ``"cpu"`` or ``"cuda"``, stored as requested.
    :param extractor: ``module:Class`` of a ReLICExtractor subclass, or None for the default.
    :param eval_domain_randomize: also evaluate on the env with ``domain_randomize=True``.
    :param agent_preset: the ``agents/<algo>.yaml`` block; ``env_preset`` (with the agent's
        ``frame_stack``/``frame_skip`` overrides), ``agent``: resolved.
    """

    env_id: str
    algo: str
    aux: str
    seed: int
    vec_env: str
    device: str
    extractor: str | None
    eval_domain_randomize: bool
    agent_preset: str
    env_preset: EnvPreset
    agent: AgentConfig

    def __post_init__(self) -> None:
        if self.algo not in ALGORITHMS:
            raise UsageError(f"Unknown algorithm {self.algo!r}; choose one of {', '.join(ALGORITHMS)}.")
        for name, choices in (("aux", AUX_CHOICES), ("vec_env", VEC_ENV_KINDS), ("device", DEVICE_CHOICES)):
            if getattr(self, name) not in choices:
                raise UsageError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}.")
        if self.agent.algo != self.algo:
            raise UsageError(f"The agent config is for {self.agent.algo}, not {self.algo}.")
        if self.aux != aux_name(self.agent.relic):
            raise UsageError(
                f"aux={self.aux!r} contradicts agent.relic.enabled={self.agent.relic.enabled} "
                f"(objective {self.agent.relic.objective!r}); --aux none is relic.enabled: false, "
                "--aux relic / curl is relic.enabled: true with that relic.objective."
            )

    @property
    def total_timesteps(self) -> int:
        """Budget in env steps (summed over envs)."""
        return self.agent.n_timesteps

    @property
    def n_envs(self) -> int:
        """Number of parallel training envs."""
        return self.agent.n_envs

    def to_dict(self) -> dict[str, Any]:
        """Plain data: exactly ``config.yaml`` without its ``meta`` key."""
        env = dataclasses.asdict(self.env_preset)
        env["match"] = list(self.env_preset.match)
        env["resize"] = None if self.env_preset.resize is None else list(self.env_preset.resize)
        keys: tuple[str, ...] = ("env_id", "algo", "aux", "seed", "total_timesteps", "n_envs", "vec_env")
        keys += ("device", "extractor", "eval_domain_randomize", "agent_preset")
        data = {key: getattr(self, key) for key in keys}
        return {**data, "env_preset": env, "agent": self.agent.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = CONFIG_FILE) -> RunConfig:
        """Rebuild from :meth:`to_dict`'s output (``meta`` ignored); PresetError if malformed."""
        data = dict(as_mapping(data, where))
        data.pop("meta", None)
        required = tuple(f.name for f in dataclasses.fields(cls))
        derived = ("total_timesteps", "n_envs")
        missing = [k for k in required if k not in data]
        unknown = [k for k in data if k not in (*required, *derived)]
        if missing or unknown:
            raise PresetError(
                f"{where}: not a relic-rl run config (missing keys {missing}, unknown keys {unknown})."
            )
        algo = str(data["algo"])
        agent = parse_agent_config(algo, as_mapping(data["agent"], f"{where}.agent"), f"{where}.agent")
        for key, value in (("total_timesteps", agent.n_timesteps), ("n_envs", agent.n_envs)):
            if key in data and data[key] != value:
                raise PresetError(
                    f"{where}: {key}={data[key]!r} disagrees with agent.{key.replace('total_', 'n_')}."
                )
        extractor = data["extractor"]
        if extractor is not None and not isinstance(extractor, str):
            raise PresetError(f"{where}.extractor: expected module:Class or null, got {extractor!r}.")
        try:
            return cls(
                **{key: str(data[key]) for key in ("env_id", "aux", "vec_env", "device", "agent_preset")},
                algo=algo,
                seed=as_int(data["seed"], f"{where}.seed"),
                extractor=extractor,
                eval_domain_randomize=as_bool(
                    data["eval_domain_randomize"], f"{where}.eval_domain_randomize"
                ),
                env_preset=dataclass_from_dict(EnvPreset, data["env_preset"], f"{where}.env_preset"),
                agent=agent,
            )
        except UsageError as e:
            raise PresetError(f"{where}: {e}") from None


@dataclass(frozen=True)
class RunStatus:
    """``status.yaml``: a run's :data:`RUN_STATES` state, env steps done (at the last checkpoint
    while running), budget, and why it failed or was interrupted."""

    state: str
    timesteps: int
    total_timesteps: int
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The mapping written to ``status.yaml``."""
        counts = {"timesteps": int(self.timesteps), "total_timesteps": int(self.total_timesteps)}
        return {**dataclasses.asdict(self), **counts}


def write_status(run_dir: Path, status: RunStatus) -> None:
    """Write ``status.yaml`` atomically."""
    atomic_write_text(run_dir / STATUS_FILE, dump_yaml(status.to_dict()))


def read_status(run_dir: Path) -> RunStatus:
    """Read ``status.yaml``; UsageError if it is missing or malformed."""
    data = read_yaml_mapping(run_dir / STATUS_FILE, "the run's status")
    try:
        state = str(data["state"])
        if state not in RUN_STATES:
            raise ValueError(state)
        timesteps, total = (int(data.get(key) or 0) for key in ("timesteps", "total_timesteps"))
        return RunStatus(state, timesteps, total, data.get("message"))
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"{run_dir / STATUS_FILE} is malformed: {data!r}.") from None


def sanitize(text: str) -> str:
    """``text`` usable as one path component (``ALE/Pong-v5`` -> ``ALE-Pong-v5``)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-") or "run"


def default_run_name(config: RunConfig, now: datetime | None = None) -> str:
    """``<env>__<algo>-<aux>__seed<k>__<YYYYmmdd-HHMMSS>`` (CleanRL's layout); ``module:`` dropped."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return f"{sanitize(strip_module(config.env_id))}__{config.algo}-{config.aux}__seed{config.seed}__{stamp}"


def create_run_dir(log_dir: Path, name: str | None, config: RunConfig) -> Path:
    """Create ``log_dir/name`` (None: :func:`default_run_name`, ``-2``, ``-3``... on a clash);
    UsageError if it exists and is not empty, or cannot be created."""
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        if name is not None:
            run_dir = log_dir / name
            if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
                raise UsageError(
                    f"The run folder {run_dir} already exists and is not empty; relic-rl never overwrites "
                    f"a run. Continue it with --resume {run_dir}, or pick another --run-name."
                )
            run_dir.mkdir(exist_ok=True)
            return run_dir
        base = default_run_name(config)
        for attempt in range(1, 1000):
            run_dir = log_dir / (base if attempt == 1 else f"{base}-{attempt}")
            with contextlib.suppress(FileExistsError):
                run_dir.mkdir()
                return run_dir
    except OSError as e:
        raise UsageError(f"Cannot create the run folder in {log_dir}: {e.strerror or e}.") from None
    raise UsageError(f"Cannot find a free run folder name in {log_dir} for {base}.")  # pragma: no cover


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` has ``config.yaml`` and ``status.yaml``."""
    return (path / CONFIG_FILE).is_file() and (path / STATUS_FILE).is_file()


def load_run_config(run_dir: Path) -> tuple[RunConfig, dict[str, Any]]:
    """``(config, meta)`` from a run folder's ``config.yaml``; UsageError if absent or invalid."""
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a folder; expected a run folder such as runs/<name>.")
    if not (run_dir / CONFIG_FILE).is_file():
        raise UsageError(
            f"{run_dir} is not a relic-rl run folder: it has no {CONFIG_FILE} (written when "
            "`python -m relic_rl.train` starts a run). Pass the folder of one run, e.g. runs/<name>."
        )
    data = read_yaml_mapping(run_dir / CONFIG_FILE, "the run's configuration")
    meta = data.get("meta")
    try:
        config = RunConfig.from_dict(data, where=str(run_dir / CONFIG_FILE))
    except PresetError as e:
        raise UsageError(f"{run_dir / CONFIG_FILE} is not a valid run configuration: {e}") from None
    return config, dict(meta) if isinstance(meta, dict) else {}


def write_run_files(run_dir: Path, config: RunConfig, meta: Mapping[str, Any], command: str) -> None:
    """Write ``config.yaml`` (config plus ``meta``), ``command.txt`` and a first ``status.yaml``."""
    atomic_write_text(run_dir / CONFIG_FILE, dump_yaml({**config.to_dict(), "meta": dict(meta)}))
    atomic_write_text(run_dir / COMMAND_FILE, command.rstrip("\n") + "\n")
    write_status(run_dir, RunStatus("running", 0, config.total_timesteps))


def append_command(run_dir: Path, line: str) -> None:
    """Append a line (e.g. a resume command) to ``command.txt``."""
    path = run_dir / COMMAND_FILE
    previous = path.read_text(encoding="utf-8") if path.is_file() else ""
    atomic_write_text(path, previous + line.rstrip("\n") + "\n")


def only_startup_files(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds nothing but what a run writes before training starts."""
    return all(p.name in STARTUP_FILES for p in run_dir.iterdir())


def monitor_dir_for(run_dir: Path, segment: int) -> Path:
    """Monitor folder of training segment ``segment`` (0: first run, k: k-th resume)."""
    base = run_dir / MONITOR_DIR
    return base if segment == 0 else base / f"resume-{segment}"


def next_segment(run_dir: Path) -> int:
    """The segment number of the next resume (1 + the resume folders already there)."""
    base = run_dir / MONITOR_DIR
    if not base.is_dir():
        return 0
    taken = [int(m.group(1)) for p in base.iterdir() if (m := re.fullmatch(r"resume-(\d+)", p.name))]
    return max(taken, default=0) + 1


_CHECKPOINT_RE = re.compile(r"model_(\d+)_steps\.zip")


@dataclass(frozen=True)
class Checkpoint:
    """A saved checkpoint; ``vecnormalize`` is None when the run has no VecNormalize."""

    timesteps: int
    model: Path
    vecnormalize: Path | None


def checkpoint_paths(run_dir: Path, timesteps: int) -> tuple[Path, Path]:
    """``(model zip, vecnormalize pkl)`` of the checkpoint at ``timesteps``."""
    folder = run_dir / CHECKPOINT_DIR
    return folder / f"model_{timesteps}_steps.zip", folder / f"vecnormalize_{timesteps}_steps.pkl"


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """The complete checkpoints of a run, oldest first (temporary files are ignored)."""
    folder = run_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if match := _CHECKPOINT_RE.fullmatch(path.name):
            vecnorm = checkpoint_paths(run_dir, int(match.group(1)))[1]
            found.append(Checkpoint(int(match.group(1)), path, vecnorm if vecnorm.is_file() else None))
    return sorted(found, key=lambda c: c.timesteps)


def prune_checkpoints(run_dir: Path, keep: int) -> list[Checkpoint]:
    """Delete all but the newest ``keep`` (>= 1) checkpoints of a run; return the deleted ones."""
    if keep < 1:
        raise ValueError(f"prune_checkpoints: keep must be >= 1, got {keep}.")
    old = list_checkpoints(run_dir)[:-keep]
    for checkpoint in old:
        checkpoint.model.unlink(missing_ok=True)
        if checkpoint.vecnormalize is not None:
            checkpoint.vecnormalize.unlink(missing_ok=True)
    return old


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The checkpoint with the most timesteps, or None."""
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


@dataclass
class EvaluationLog:
    """Append-only ``evaluations.csv`` writer (header :data:`EVAL_HEADER` with the first row)."""

    path: Path
    rows_written: int = field(default=0, init=False)

    def append(self, timesteps: int, rewards: Sequence[float]) -> tuple[float, float]:
        """Append one evaluation; return ``(mean, std)`` of the returns."""
        values = [float(r) for r in rewards]
        mean = sum(values) / len(values) if values else float("nan")
        std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 if values else float("nan")
        header = [EVAL_HEADER] if not self.path.is_file() or self.path.stat().st_size == 0 else []
        row = [int(timesteps), repr(mean), repr(std), " ".join(repr(v) for v in values)]
        with self.path.open("a", encoding="utf-8", newline="") as f:
            # One write call per row, flushed at once, so a kill leaves whole rows only.
            f.write(_csv_text([*header, row]))
            f.flush()
            os.fsync(f.fileno())
        self.rows_written += 1
        return mean, std


def truncate_evaluations(path: Path, max_timesteps: int) -> int:
    """Drop rows with ``timesteps > max_timesteps`` (redone after a resume); return how many."""
    rows = read_evaluation_rows(path)
    keep = [r for r in rows if int(float(r["timesteps"])) <= max_timesteps]
    if len(keep) == len(rows):
        return 0
    atomic_write_text(path, _csv_text([EVAL_HEADER, *([r.get(k, "") for k in EVAL_HEADER] for r in keep)]))
    return len(rows) - len(keep)


def _csv_text(rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
