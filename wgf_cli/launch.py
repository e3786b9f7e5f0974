"""The only module that touches Hydra.

:func:`launch` validates the overrides (composition, then the experiment's own checks) for
every job of a run or sweep *before* any work, claims a fresh run folder, and runs the task
through Hydra's own run / multirun path, so dated run folders, ``.hydra/``, job logging,
sweeps and launcher plugins all behave as in any Hydra app.  Configuration problems become
a :class:`ConfigError` carrying one line for the user.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from wgf_cli.catalog import PACKAGE_ROOT, conf_dir, conf_location  # noqa: F401  (re-exported)
from wgf_cli.commands import Command  # the subcommand record (defined Hydra-free, for the reporting layer)
from wgf_cli.errors import ConfigError, Interrupted, NothingToDo


@dataclass
class JobResult:
    run_dir: Path
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class LaunchResult:
    multirun: bool
    root: Path
    jobs: list[JobResult]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else text


def _hydra_message(exc: BaseException) -> str:
    """One line out of Hydra's multi-line errors, keeping the most specific cause."""
    msg = _first_line(exc)
    cause = exc.__cause__ or exc.__context__
    while cause is not None and ("Error merging" in msg or "Error parsing" in msg):
        msg = _first_line(cause)
        cause = cause.__cause__ or cause.__context__
    return msg


def _parse(overrides: list[str], multirun: bool) -> list[list[str]]:
    """Split sweep overrides into the list of jobs' overrides (one job unless multirun)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except OverrideParseException as exc:
        raise ConfigError(f"cannot parse override: {_first_line(exc)}") from None
    sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
    if sweeps and not multirun:
        raise ConfigError(f"sweep override {sweeps[0]!r} needs -m/--multirun")
    if not multirun:
        return [list(overrides)]
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [list(job) for batch in batches for job in batch]


def _user_set(overrides: list[str], key: str) -> bool:
    return any(o.lstrip("+~").split("=", 1)[0] == key for o in overrides)


def claim_run_dir(base: Path, now: datetime | None = None) -> Path:
    """Create and return ``base/YYYY-MM-DD/HH-MM-SS`` (or ``...-1``, ``-2``, ... if taken)."""
    now = now or datetime.now()
    day = base / now.strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    stem = now.strftime("%H-%M-%S")
    k = 0
    while True:
        path = day / (stem if k == 0 else f"{stem}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1


class _Task:
    """Hydra task function (picklable, for process launchers): one job in its run folder."""

    def __init__(self, command: Command, progress: bool, argv: list[str]) -> None:
        self.command, self.progress, self.argv = command, progress, argv

    def __call__(self, cfg) -> dict[str, Any]:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        from wgf_cli.run import Run

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        experiment = self.command.experiment()
        run = Run(run_dir, self.command.name, OmegaConf.to_yaml(cfg, resolve=True),
                  progress=self.progress, device=str(cfg.get("device", "")), argv=self.argv,
                  resume=bool(cfg.get("resume", False)))
        with run:
            summary = experiment.run(cfg, run)
        return {"run_dir": str(run_dir), "summary": summary}


def _hydra(command: Command):
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    return Hydra.create_main_hydra2(
        task_name=command.name, config_search_path=create_config_search_path(conf_location()[1])
    )


def _compose_raw(command: Command, overrides: list[str]):
    """Hydra's composition of the primary config with ``overrides`` (``hydra`` node included);
    every Hydra/OmegaConf error becomes one :class:`ConfigError` line naming what is allowed."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    hydra = _hydra(command)
    try:
        return hydra.compose_config(command.config_name, overrides, run_mode=RunMode.RUN,
                                    with_log_configuration=False)
    except ConfigError:
        raise
    except Exception as exc:  # Hydra/OmegaConf raise many types; all are config errors here
        GlobalHydra.instance().clear()
        raise ConfigError(_explain(exc, command, overrides)) from None
    finally:
        GlobalHydra.instance().clear()


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _group_names(command: Command) -> list[str]:
    from wgf_cli import catalog

    return [g.name for g in catalog.groups(command.config_name)] + ["experiment"]


def _base_keys(command: Command, overrides: list[str]) -> list[str]:
    """The keys of the config composed with only the group choices of ``overrides``."""
    from omegaconf import open_dict

    from wgf_cli import catalog

    groups = set(_group_names(command))
    for attempt in ([o for o in overrides if _key(o) in groups and "=" in o], []):
        try:
            cfg = _compose_raw(command, attempt)
        except ConfigError:
            continue
        with open_dict(cfg):
            cfg.pop("hydra", None)
        return catalog.leaf_keys(cfg)
    return []


def _unknown_key(command: Command, key: str, overrides: list[str]) -> str:
    from wgf_cli import catalog

    keys = _base_keys(command, overrides)
    groups = _group_names(command)
    match = catalog.closest(key, keys + groups)
    hint = f"; did you mean {match}?" if match else ""
    parent = key.rpartition(".")[0]
    children = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent]
    if parent and children:
        where = f"keys of {parent}: " + catalog.listing(children)
    elif parent and parent in keys:
        where = f"{parent} is a value, it has no keys"
    else:
        where = ("top-level keys: " + catalog.listing(k for k in keys if "." not in k)
                 + "; groups: " + ", ".join(groups))
    return f"unknown key {key!r}{hint} ({where}; all keys: wgf {command.name} --show-config)"


def _unknown_option(command: Command, group: str, option: str) -> str:
    from wgf_cli import catalog

    if group == "experiment":
        return _unknown_preset(command, option)
    allowed = catalog.options(group)
    if not allowed:
        match = catalog.closest(group, _group_names(command))
        hint = f"; did you mean {match}?" if match else ""
        return f"unknown config group {group!r}{hint} (groups: {', '.join(_group_names(command))})"
    match = catalog.closest(option, allowed)
    hint = f"; did you mean {group}={match}?" if match else ""
    return f"{group}={option}: no such option{hint} ({group}: {', '.join(allowed)})"


def _unknown_preset(command: Command, name: str) -> str:
    from wgf_cli import catalog
    from wgf_cli.commands import COMMANDS

    own = [p for p, _ in catalog.presets(command.name)]
    for other in COMMANDS:
        if other != command.name and name in [p.name for p in COMMANDS[other].experiment().PRESETS]:
            return (f"experiment={name} is a preset of wgf {other}, not of wgf {command.name} "
                    f"(presets of wgf {command.name}: {', '.join(own)})")
    match = catalog.closest(name, own)
    hint = f"; did you mean experiment={match}?" if match else ""
    return f"experiment={name}: no such preset of wgf {command.name}{hint} (presets: {', '.join(own)})"


def _check_preset(command: Command, overrides: list[str]) -> None:
    """``experiment=NAME`` must be one of this subcommand's presets (the files are shared)."""
    from wgf_cli.commands import COMMANDS

    for o in overrides:
        if _key(o) == "experiment" and "=" in o:
            name = o.split("=", 1)[1]
            if name in ("null", ""):
                continue
            if name in [p.name for p in command.experiment().PRESETS]:
                continue
            if any(name in [p.name for p in COMMANDS[c].experiment().PRESETS]
                   for c in COMMANDS if c != command.name):
                raise ConfigError(_unknown_preset(command, name))


def _explain(exc: BaseException, command: Command, overrides: list[str]) -> str:
    """One line out of a Hydra composition error: the closest match and the allowed values."""
    text = str(exc)
    if "submitit" in text:
        return _hydra_message(exc) + " (the SLURM launcher needs: pip install 'wgf-cli[slurm]')"
    m = re.search(r"Could not override '([^']+)'", text)
    if m:
        key = m.group(1)
        if "/" in key:  # a nested group name (energy/potential=...)
            return _unknown_option(command, key, "")
        return _unknown_key(command, key, overrides)
    m = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    if m:
        return _unknown_option(command, m.group(1), m.group(2))
    return _hydra_message(exc)


def compose(command: Command, overrides: list[str]):
    """The composed config (without the ``hydra`` node) for one job's overrides.

    Raises :class:`ConfigError` on any composition problem and on the experiment's own
    validation errors.
    """
    from omegaconf import OmegaConf, open_dict

    command.check_requires()
    _check_preset(command, overrides)
    cfg = _compose_raw(command, overrides)
    with open_dict(cfg):
        cfg.pop("hydra", None)
    # group folders are shared between subcommands (conf/solver/, conf/source/): an option of
    # another subcommand is named before its interpolations fail to resolve
    check_choices = getattr(command.experiment(), "check_choices", None)
    if check_choices is not None:
        check_choices(cfg)
    try:
        OmegaConf.resolve(cfg)
    except Exception as exc:
        raise ConfigError(_hydra_message(exc)) from None
    command.experiment().validate(cfg)
    return cfg


def show_config(command: Command, overrides: list[str], resume: str | Path | None = None) -> str:
    """The YAML of the config a run would use (with ``resume``: the resumed run's)."""
    from omegaconf import OmegaConf

    overrides = _parse(overrides, multirun=False)[0]
    if resume is not None:
        plan = resume_plan(command, resume, overrides)
        if plan.sweep:
            raise ConfigError("--show-config with a sweep folder: give one of its job folders")
        overrides = [o for o in plan.overrides if not _key(o).startswith("hydra.")]
    return OmegaConf.to_yaml(compose(command, overrides))


#: config keys a resumed run may change (fnmatch patterns on dotted keys): how long it runs,
#: what it writes and where it computes -- never what it computes
RESUME_SAFE = ("steps", "energy.steps", "final_time", "epochs", "train.epochs", "train.cloud_epochs",
               "train.stop_after", "iterations", "output.*", "plot.*", "plots.*", "device", "threads",
               "workers", "*.workers", "force", "strict", "resume")


@dataclass
class ResumePlan:
    """What ``--resume FOLDER`` runs: the overrides of the job (or of each unfinished sweep job)."""

    folder: Path
    overrides: list[str]
    sweep: bool = False
    #: sweep: ``(job folder, overrides)`` of every job not completed yet
    jobs: list[tuple[Path, list[str]]] = field(default_factory=list)
    total: int = 0


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        if not node and prefix:
            out[prefix[:-1]] = {}
        return out
    out[prefix[:-1]] = node
    return out


def _safe(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, pat) for pat in RESUME_SAFE)


def _saved_overrides(folder: Path) -> list[str]:
    from wgf_cli.run import read_file

    saved = read_file(folder / ".hydra" / "overrides.yaml", [])
    return [str(o) for o in saved if not _key(str(o)).startswith("hydra.") and _key(str(o)) != "resume"]


def _resumable(command: Command, overrides: list[str]) -> bool:
    """Whether the subcommand continues from checkpoints (its config has a ``resume`` key)."""
    return "resume" in _base_keys(command, overrides)


def _check_same_config(command: Command, folder: Path, overrides: list[str], label: str) -> bool:
    """Refuse (one line) a config that differs from ``folder/config.yaml`` in an unsafe key.
    Returns whether anything (safe) differs."""
    import yaml
    from omegaconf import OmegaConf, open_dict

    _check_preset(command, overrides)
    cfg = _compose_raw(command, overrides)  # compared before the (slower) validation
    with open_dict(cfg):
        cfg.pop("hydra", None)
    try:
        now = _flatten(OmegaConf.to_container(cfg, resolve=True))
    except Exception as exc:
        raise ConfigError(_hydra_message(exc)) from None
    try:
        saved = _flatten(yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {})
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{label}: cannot read {folder / 'config.yaml'} ({exc})") from None
    changed = sorted(k for k in set(now) | set(saved) if now.get(k, "<absent>") != saved.get(k, "<absent>"))
    unsafe = [k for k in changed if not _safe(k)]
    if unsafe:
        k = unsafe[0]
        more = f" (and {len(unsafe) - 1} more: {', '.join(unsafe[1:4])})" if len(unsafe) > 1 else ""
        raise ConfigError(f"{label}: {k}={now.get(k, '<absent>')} differs from the run's "
                          f"{k}={saved.get(k, '<absent>')}{more}; a resumed run may change only "
                          "steps, epochs, output options, device and threads (start a new run instead)")
    compose(command, overrides)
    return bool([k for k in changed if k != "resume"])


def _merge(overrides: list[str]) -> list[str]:
    """Later ``key=value`` overrides replace earlier ones of the same key (order kept)."""
    last = {_key(o): i for i, o in enumerate(overrides) if "=" in o}
    return [o for i, o in enumerate(overrides) if "=" not in o or last[_key(o)] == i]


def resume_plan(command: Command, folder: str | Path, overrides: list[str]) -> ResumePlan:
    """Check that ``folder`` can be resumed with ``overrides`` and return what to run.

    A run folder continues from its checkpoints (subcommands with a ``resume`` key) or, for a
    subcommand without checkpoints, reruns from the start in the same folder unless it
    completed.  A sweep folder reruns only its jobs that did not complete.  Raises
    :class:`ConfigError` (nothing touched) when the folder is not a run of this subcommand or
    the config differs in a key that is not safe to change.
    """
    from wgf_cli.run import read_file

    label = f"--resume {folder}"
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{label}: no such folder")
    path = path.resolve()
    user = [o for o in overrides if _key(o) not in ("hydra.run.dir", "hydra.sweep.dir", "resume")]
    if not (path / "config.yaml").is_file() and (path / "multirun.yaml").is_file():
        return _sweep_plan(command, path, user, label)
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"{label}: not a run folder (no config.yaml) nor a sweep folder (no multirun.yaml)")
    info = read_file(path / "run.json", {})
    if info.get("command") and info["command"] != command.name:
        raise ConfigError(f"{label}: a run of wgf {info['command']}, not of wgf {command.name} "
                          f"(use: wgf {info['command']} --resume {folder})")
    job = _merge(_saved_overrides(path) + user)
    changed = _check_same_config(command, path, job, label)
    status = read_file(path / "status.json", {}).get("status")
    if _resumable(command, job):
        if status == "completed" and not changed:
            raise NothingToDo(f"{path} already completed; to continue it, raise its steps or epochs "
                              f"(e.g. wgf {command.name} --resume {folder} --steps N / --epochs N)")
        return ResumePlan(path, [*job, "resume=true", f"hydra.run.dir={path}"])
    if status == "completed":
        raise NothingToDo(f"{path} already completed; wgf {command.name} keeps no checkpoints to "
                          "continue from (start a new run for more)")
    return ResumePlan(path, [*job, f"hydra.run.dir={path}"])


def _sweep_plan(command: Command, root: Path, user: list[str], label: str) -> ResumePlan:
    from wgf_cli.run import read_file

    spec = read_file(root / "multirun.yaml", {})
    task = [str(o) for o in ((spec.get("hydra") or {}).get("overrides") or {}).get("task", [])]
    if (spec.get("hydra") or {}).get("job", {}).get("name") not in (None, command.name, command.config_name):
        raise ConfigError(f"{label}: a sweep of another subcommand ({spec['hydra']['job']['name']})")
    jobs = _parse([o for o in task if not _key(o).startswith("hydra.")], multirun=True)
    todo: list[tuple[Path, list[str]]] = []
    for i, job in enumerate(jobs):
        folder = root / str(i)
        status = read_file(folder / "status.json", {}).get("status")
        if status == "completed":
            continue
        if (folder / "config.yaml").is_file():
            plan_overrides = [*job, *user]
            _check_same_config(command, folder, plan_overrides, f"{label} (job {i})")
            if _resumable(command, plan_overrides):
                plan_overrides.append("resume=true")
        else:
            plan_overrides = [*job, *user]
            compose(command, plan_overrides)
        todo.append((folder, [*plan_overrides, f"hydra.run.dir={folder}"]))
    if not todo:
        raise NothingToDo(f"{root}: every job of the sweep ({len(jobs)}) already completed")
    return ResumePlan(root, [], sweep=True, jobs=todo, total=len(jobs))


def _resume_from_overrides(command: Command, overrides: list[str], multirun: bool) -> str | None:
    """``resume=true`` needs the run folder: it is read from ``hydra.run.dir`` (then the run
    is checked like ``--resume``), and without one it is an error."""
    asks = any(_key(o) == "resume" and o.split("=", 1)[1].strip().lower() == "true"
               for o in overrides if "=" in o)
    if not asks:
        return None
    if multirun or not _user_set(overrides, "hydra.run.dir"):
        raise ConfigError(f"resume=true needs the run folder: wgf {command.name} --resume RUN_DIR")
    folder = Path(_override_value(overrides, "hydra.run.dir"))
    return str(folder) if (folder / "config.yaml").is_file() else None


def launch(command: Command, overrides: list[str], *, multirun: bool = False,
           progress: bool = True, outputs: Path | None = None,
           resume: str | Path | None = None) -> LaunchResult:
    """Validate every job, then run them through Hydra.  Returns the jobs' results.

    Raises :class:`ConfigError` (nothing run) for bad input; a job that fails during its run
    is reported in its :class:`JobResult` (status ``failed``), and Ctrl-C raises
    :class:`~wgf_cli.errors.Interrupted` (the folder to resume) after the run folder was
    marked ``interrupted``.  ``resume``: a run or sweep folder to continue (see
    :func:`resume_plan`).
    """
    from hydra.core.global_hydra import GlobalHydra

    overrides = list(overrides)
    if resume is None:
        resume = _resume_from_overrides(command, overrides, multirun)
    if resume is not None:
        if multirun:
            raise ConfigError("--resume takes the sweep folder without -m/--multirun")
        plan = resume_plan(command, resume, _parse(overrides, multirun=False)[0])
        if plan.sweep:
            return _resume_sweep(command, plan, progress)
        overrides = plan.overrides
    jobs = _parse(overrides, multirun)
    for job in jobs:
        compose(command, job)

    outputs = Path(outputs or Path.cwd() / "outputs")
    argv = list(sys.argv)
    task = _Task(command, progress and not multirun, argv)
    hydra = _hydra(command)
    folder: Path | None = None
    try:
        if not multirun:
            if not _user_set(overrides, "hydra.run.dir"):
                overrides.append(f"hydra.run.dir={claim_run_dir(outputs)}")
            run_dir = folder = Path(_override_value(overrides, "hydra.run.dir")).resolve()
            try:
                ret = hydra.run(command.config_name, task, overrides)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # the job failed; its folder says why (status.json)
                job = JobResult(run_dir, "failed", {}, overrides, f"{type(exc).__name__}: {exc}")
                return LaunchResult(False, run_dir, [job])
            return LaunchResult(False, run_dir, [_job_result(ret, overrides)])
        if not _user_set(overrides, "hydra.sweep.dir"):
            overrides.append(f"hydra.sweep.dir={claim_run_dir(outputs / 'multirun')}")
        root = folder = Path(_override_value(overrides, "hydra.sweep.dir")).resolve()
        try:
            rets = hydra.multirun(command.config_name, task, overrides)
            results = [_job_result(r, list(r.overrides or [])) for batch in rets for r in batch]
        except KeyboardInterrupt:
            raise
        except Exception:  # Hydra's sweeper re-raises a failed job once all jobs ran
            results = _jobs_from_folders(root)
        _write_sweep_summary(root, results)
        return LaunchResult(True, root, results)
    except KeyboardInterrupt:
        if folder is None:
            raise
        raise Interrupted(folder, command.name, multirun) from None
    finally:
        GlobalHydra.instance().clear()


def _resume_sweep(command: Command, plan: ResumePlan, progress: bool) -> LaunchResult:
    """Rerun the unfinished jobs of a sweep, one after the other, each in its own folder;
    then rewrite the sweep's ``summary.csv`` from every job folder."""
    for _folder, job in plan.jobs:
        try:
            launch(command, job, progress=progress)
        except Interrupted:
            raise Interrupted(plan.folder, command.name, True) from None
    results = _jobs_from_folders(plan.folder)
    _write_sweep_summary(plan.folder, results)
    return LaunchResult(True, plan.folder, results)


def _override_value(overrides: list[str], key: str) -> str:
    for o in reversed(overrides):
        if o.split("=", 1)[0] == key:
            return o.split("=", 1)[1]
    raise KeyError(key)


def _job_result(ret, overrides: list[str]) -> JobResult:
    from hydra.core.utils import JobStatus

    if ret.status == JobStatus.COMPLETED:
        value = ret.return_value
        return JobResult(Path(value["run_dir"]), "completed", value["summary"] or {},
                         list(overrides))
    exc = ret._return_value
    run_dir = Path(ret.working_dir or ".")
    if ret.hydra_cfg is not None:
        run_dir = Path(ret.hydra_cfg.hydra.runtime.output_dir)
    return JobResult(run_dir, "failed", {}, list(overrides), f"{type(exc).__name__}: {exc}")


def _jobs_from_folders(root: Path) -> list[JobResult]:
    """The results of a sweep read back from its job folders (``status.json``, ``summary.json``)."""
    from wgf_cli.run import read_file

    jobs = sorted((p for p in root.iterdir() if (p / "status.json").exists()),
                  key=lambda p: (len(p.name), p.name))
    results = []
    for job in jobs:
        status = read_file(job / "status.json", {})
        overrides = [o for o in read_file(job / ".hydra" / "overrides.yaml", []) if _key(str(o)) != "resume"]
        results.append(JobResult(job, status.get("status", "failed"), read_file(job / "summary.json", {}),
                                 overrides, status.get("error")))
    return results


def _write_sweep_summary(root: Path, results: list[JobResult]) -> Path:
    """``summary.csv`` at the sweep root: one row per job (overrides, status, summary)."""
    from wgf_cli.run import atomic_write

    keys: list[str] = []
    for r in results:
        keys += [k for k in r.summary if k not in keys]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["job", "overrides", "status", "run_dir", *keys])
    for i, r in enumerate(results):
        writer.writerow([i, " ".join(r.overrides), r.status, str(r.run_dir),
                         *[r.summary.get(k, "") for k in keys]])
    return atomic_write(root / "summary.csv", buf.getvalue())
