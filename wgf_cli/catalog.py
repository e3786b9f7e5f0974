"""What exists: the config folder, each subcommand's config groups and options, its presets,
the keys of a composed config, and the closest match to a misspelt name.

Reads ``conf/`` as plain YAML files (no Hydra, no torch), so ``wgf <cmd> --help``, ``wgf
presets`` and the one-line errors for unknown names are instant.  The config folder is the
repository's ``conf/`` in a checkout, or the copy that ships inside the wheel
(``wgf_cli/conf``, Hydra search path ``pkg://wgf_cli.conf``) when installed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wgf_cli.errors import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parent
#: groups every subcommand has; shown last in listings
_COMMON_GROUPS = ("launcher", "hydra")


def _is_conf(path: Path) -> bool:
    return (path / "hydra" / "default.yaml").is_file() and (path / "jko.yaml").is_file()


def conf_location() -> tuple[Path, str]:
    """``(folder, Hydra search path)`` of the configs.

    ``$WGF_CONF`` if set; else the repository's top-level ``conf/`` (a checkout or editable
    install); else the copy inside the installed package, which Hydra reads through
    ``pkg://wgf_cli.conf``.
    """
    env = os.environ.get("WGF_CONF")
    if env:
        path = Path(env).expanduser().resolve()
        if not _is_conf(path):
            raise ConfigError(f"WGF_CONF={env} is not a wgf config folder (no hydra/default.yaml, jko.yaml)")
        return path, str(path)
    checkout = PACKAGE_ROOT.parent / "conf"
    if _is_conf(checkout):
        return checkout, str(checkout)
    packaged = PACKAGE_ROOT / "conf"
    if _is_conf(packaged):
        return packaged, "pkg://wgf_cli.conf"
    raise ConfigError(f"no config folder found ({checkout} or the installed package's conf/); "
                      "set WGF_CONF to the repository's conf/")


def conf_dir() -> Path:
    return conf_location()[0]


def _yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}


@dataclass(frozen=True)
class Group:
    """A config group of a subcommand: ``name=option`` picks ``conf/<name>/<option>.yaml``."""

    name: str
    default: str | None
    options: tuple[str, ...]


def options(group: str) -> list[str]:
    """The options of config group ``group`` (``energy``, ``energy/potential``, ...)."""
    folder = conf_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _defaults(path: Path) -> list[tuple[str, str | None]]:
    out = []
    for entry in _yaml(path).get("defaults", []) or []:
        if isinstance(entry, dict):
            for k, v in entry.items():
                k = str(k)
                if k.startswith("override ") or k.startswith("/"):
                    continue
                out.append((k, None if v is None else str(v)))
    return out


def groups(config_name: str) -> list[Group]:
    """The config groups of primary config ``config_name`` (``jko``, ``renyi_mi``, ...), the
    nested groups of their default options included (``energy/potential`` when the default
    energy has one), then ``experiment`` and the common groups."""
    conf = conf_dir()
    primary = _defaults(conf / f"{config_name}.yaml")
    found: list[Group] = []
    for name, default in primary:
        if name in _COMMON_GROUPS or name == "experiment":
            continue
        found.append(Group(name, default, tuple(options(name))))
        # nested groups (conf/<group>/<sub>/): every option of the group may select one
        folder = conf / name
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
            nested_default = next((v for opt in found[-1].options
                                   for k, v in _defaults(folder / f"{opt}.yaml") if k == sub.name), None)
            found.append(Group(f"{name}/{sub.name}", nested_default, tuple(options(f"{name}/{sub.name}"))))
    for name in ("launcher",):
        default = dict(primary).get(name)
        found.append(Group(name, default, tuple(options(name))))
    return found


def presets(command: str) -> list[tuple[str, str]]:
    """``(name, what it shows)`` of every preset of subcommand ``command`` (``experiment=NAME``)."""
    from wgf_cli.commands import COMMANDS

    return [(p.name, p.what) for p in COMMANDS[command].experiment().PRESETS]


def all_presets() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))


def leaf_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a (nested) mapping, inner nodes included: ``solver``, ``solver.tau``."""
    out: list[str] = []
    items = cfg.items() if hasattr(cfg, "items") else []
    for k, v in items:
        key = f"{prefix}{k}"
        out.append(key)
        if hasattr(v, "items"):
            out += leaf_keys(v, key + ".")
    return out


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.5) -> str | None:
    """The candidate closest to ``word`` (:func:`difflib.get_close_matches`, ratio >= ``cutoff``), or None."""
    candidates = list(dict.fromkeys(candidates))
    match = difflib.get_close_matches(word, candidates, n=1, cutoff=cutoff)
    if match:
        return match[0]
    # a misspelt last segment of a dotted key: compare the leaves under the same parent
    parent, _, leaf = word.rpartition(".")
    if parent:
        siblings = [c.rpartition(".")[2] for c in candidates if c.rpartition(".")[0] == parent]
        match = difflib.get_close_matches(leaf, siblings, n=1, cutoff=cutoff)
        if match:
            return f"{parent}.{match[0]}"
    return None


def listing(values: Iterable[str], limit: int = 30) -> str:
    values = list(values)
    more = f", ... ({len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


def config_help(name: str) -> str:
    """The config groups (``group=option``, default starred) and presets of subcommand ``name``."""
    from wgf_cli.commands import COMMANDS

    command = COMMANDS[name]
    lines = [f"Config groups of wgf {name} (GROUP=OPTION; * = default):"]
    for g in groups(command.config_name):
        opts = ", ".join(f"{o}*" if o == g.default else o for o in g.options)
        lines.append(f"  {g.name:<18} {opts}")
    lines.append("")
    lines.append(f"Presets (experiment=NAME; `wgf presets {name}` says what each shows):")
    lines.append("  " + ", ".join(p for p, _ in presets(name)))
    lines.append("")
    lines.append(f"Every key and its value: wgf {name} --show-config [overrides]")
    return "\n".join(lines) + "\n"
