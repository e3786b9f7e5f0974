"""The subcommands: name -> :class:`Command` (primary config, experiment module, title).

The CLI, :mod:`wgf_cli.launch` and the reporting layer (``make reproduce``, ``wgf report``,
``wgf summarize``) all read this table; it imports neither Typer nor Hydra.  A new
subcommand adds one line here, one entry of ``_SPECS`` in :mod:`wgf_cli.cli` (its typed flags
and examples; its help starts with the title given here), a primary config in ``conf/`` and an experiment module with
``validate(cfg)``, ``run(cfg, run)`` and ``PRESETS``.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from wgf_cli.errors import ConfigError


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, primary config and experiment module (``validate``, ``run``)."""

    name: str
    config_name: str
    module: str
    #: importable modules the subcommand needs beyond the core install, and the extra that has them
    requires: tuple[str, ...] = ()
    extra: str | None = None
    #: one line on what it does: the first line of ``wgf NAME --help`` and the report's section text
    title: str = ""

    def experiment(self):
        """The experiment module (imported on first use: torch and the engines come with it)."""
        return importlib.import_module(self.module)

    def check_requires(self) -> None:
        """:class:`ConfigError` naming the extra to install when a required module is missing."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(f"wgf {self.name} needs {', '.join(missing)}: "
                              f"pip install 'wgf-cli[{self.extra}]'")


COMMANDS: dict[str, Command] = {
    "jko": Command("jko", "jko", "wgf_cli.experiments.jko",
                   title="Entropic JKO Wasserstein gradient flow of a free energy on a grid."),
    "meanfield": Command("meanfield", "meanfield", "wgf_cli.experiments.meanfield",
                         title="Two-layer ReLU networks in the mean-field limit: particle gd vs the "
                               "Wasserstein flow."),
    "renyi-mi": Command("renyi-mi", "renyi_mi", "wgf_cli.experiments.renyi_mi",
                        title="Matrix-based Rényi entropy and mutual information of network layers (bits)."),
    "wgan": Command("wgan", "wgan", "wgf_cli.experiments.wgan",
                    title="GAN / Wasserstein-GAN training dynamics on toy distributions, and the "
                          "Dirac-GAN pendulum."),
    "ot": Command("ot", "ot", "wgf_cli.experiments.ot",
                  title="Optimal transport between densities: W2 geodesics, maps, entropic plans, duality."),
    # the GDELT stack is an extra: pip install 'wgf-cli[gdelt]' (make install has it)
    "gdelt-build": Command("gdelt-build", "gdelt_build", "wgf_cli.experiments.gdelt_build",
                           requires=("pyarrow",), extra="gdelt",
                           title="Raw GDELT event files -> clean events, daily descriptors and "
                                 "training sequences."),
    "gdelt-train": Command("gdelt-train", "gdelt_train", "wgf_cli.experiments.gdelt_train",
                           requires=("pyarrow",), extra="gdelt",
                           title="Forecast a country's next-day GDELT events with a causal transformer "
                                 "over days."),
    "gdelt-forecast": Command("gdelt-forecast", "gdelt_forecast", "wgf_cli.experiments.gdelt_forecast",
                              requires=("pyarrow",), extra="gdelt",
                              title="Forecast the day after a build's last day with a trained gdelt-train run."),
}
