"""The subcommands: name -> :class:`~wgf_cli.launch.Command` (primary config, experiment module).

The CLI and ``make reproduce`` both read this table; a new subcommand adds one line here,
one Typer command in :mod:`wgf_cli.cli`, a primary config in ``conf/`` and an experiment
module with ``validate(cfg)``, ``run(cfg, run)`` and ``PRESETS``.
"""

from __future__ import annotations

from wgf_cli.launch import Command

COMMANDS: dict[str, Command] = {
    "jko": Command("jko", "jko", "wgf_cli.experiments.jko"),
    "gdelt-train": Command("gdelt-train", "gdelt_train", "wgf_cli.experiments.gdelt_train"),
}
