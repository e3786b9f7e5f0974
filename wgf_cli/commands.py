"""The subcommands: name -> :class:`~wgf_cli.launch.Command` (primary config, experiment module).

The CLI and ``make reproduce`` both read this table; a new subcommand adds one line here,
one Typer command in :mod:`wgf_cli.cli`, a primary config in ``conf/`` and an experiment
module with ``validate(cfg)``, ``run(cfg, run)`` and ``PRESETS``.
"""

from __future__ import annotations

from wgf_cli.launch import Command

COMMANDS: dict[str, Command] = {
    "jko": Command("jko", "jko", "wgf_cli.experiments.jko"),
    "meanfield": Command("meanfield", "meanfield", "wgf_cli.experiments.meanfield"),
    "renyi-mi": Command("renyi-mi", "renyi_mi", "wgf_cli.experiments.renyi_mi"),
    "wgan": Command("wgan", "wgan", "wgf_cli.experiments.wgan"),
    "ot": Command("ot", "ot", "wgf_cli.experiments.ot"),
    # the GDELT stack is an extra: pip install 'wgf-cli[gdelt]' (make install has it)
    "gdelt-build": Command("gdelt-build", "gdelt_build", "wgf_cli.experiments.gdelt_build",
                           requires=("pyarrow",), extra="gdelt"),
    "gdelt-train": Command("gdelt-train", "gdelt_train", "wgf_cli.experiments.gdelt_train",
                           requires=("pyarrow",), extra="gdelt"),
    "gdelt-forecast": Command("gdelt-forecast", "gdelt_forecast", "wgf_cli.experiments.gdelt_forecast",
                              requires=("pyarrow",), extra="gdelt"),
}
