"""The layers of docs/architecture.md, held by the import-linter contracts in pyproject.toml.

``lint-imports`` (part of ``make lint``) must keep every contract; the contracts themselves must
break on the imports they exist to forbid (an engine importing upward, Hydra in the reporting
layer, a cycle), so a contract loosened by mistake fails here too.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

importlinter = pytest.importorskip("importlinter", reason="import-linter is in the dev extra")
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

import grimp  # noqa: E402  (installed with import-linter)
from importlinter.configuration import configure  # noqa: E402
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract  # noqa: E402
from importlinter.contracts.forbidden import ForbiddenContract  # noqa: E402
from importlinter.contracts.layers import LayersContract  # noqa: E402

configure()  # import-linter's own settings (its timer, readers), as the lint-imports command sets them

ROOT = Path(__file__).resolve().parents[1]
CLASSES = {"layers": LayersContract, "forbidden": ForbiddenContract, "acyclic_siblings": AcyclicSiblingsContract}


@pytest.fixture(scope="module")
def config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


@pytest.fixture(scope="module")
def graph(config) -> grimp.ImportGraph:
    sys.path.insert(0, str(ROOT))  # this checkout's wgf_cli, as lint-imports (run from the root) sees it
    try:
        return grimp.build_graph(config["root_package"], include_external_packages=True, cache_dir=None)
    finally:
        sys.path.remove(str(ROOT))


def _check(config: dict, contract_id: str, graph: grimp.ImportGraph, *extra: tuple[str, str]):
    """Check one contract of pyproject.toml against ``graph`` plus the ``extra`` (importer, imported) imports."""
    options = next(c for c in config["contracts"] if c["id"] == contract_id)
    # lint-imports reads every option as text
    options = {k: str(v).lower() if isinstance(v, bool | int) else v for k, v in options.items()}
    g = copy.deepcopy(graph)
    for importer, imported in extra:
        g.add_import(importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}")
    session = {**config, "root_packages": [config["root_package"]]}  # as lint-imports normalises them
    contract = CLASSES[options["type"]](name=options["name"], session_options=session, contract_options=options)
    return contract.check(g, verbose=False)


def test_lint_imports_keeps_every_contract():
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "importlinter.cli"]
    proc = subprocess.run([*cmd, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_the_contracts_cover_the_layers(config):
    ids = {c["id"] for c in config["contracts"]}
    assert {"layers", "engines-plain", "reporting-hydra-free", "acyclic"} <= ids
    layers = next(c for c in config["contracts"] if c["id"] == "layers")
    assert layers["exhaustive"] is True  # a new top-level module must be given a layer
    named = {m.strip() for layer in layers["layers"] for m in layer.split("|")}
    for engine in ("ot", "flows", "gan", "info", "meanfield", "forecast", "gdelt"):
        assert engine in named


@pytest.mark.parametrize("contract_id", ["layers", "engines-plain", "reporting-hydra-free", "acyclic"])
def test_each_contract_is_kept(config, graph, contract_id):
    assert _check(config, contract_id, graph).kept


@pytest.mark.parametrize("importer, imported", [
    ("wgf_cli.ot.grid", "wgf_cli.experiments.jko"),   # an engine reaching up to the wiring
    ("wgf_cli.info.entropy", "wgf_cli.run"),          # an engine using the run-folder contract
    ("wgf_cli.experiments.jko", "wgf_cli.launch"),    # the wiring reaching up to Hydra
    ("wgf_cli.report", "wgf_cli.cli"),                # the report reading the Typer app
    ("wgf_cli.ot.grid", "wgf_cli.flows.jko"),         # a foundation importing an engine above it
    ("wgf_cli.flows.jko", "wgf_cli.info.entropy"),    # two engines side by side
    ("wgf_cli.meanfield.network", "wgf_cli.gan.losses"),  # meanfield sits below gan
])
def test_an_upward_or_sideways_import_breaks_the_layers(config, graph, importer, imported):
    assert not _check(config, "layers", graph, (importer, imported)).kept


@pytest.mark.parametrize("importer, imported", [
    ("wgf_cli.flows.jko", "hydra"), ("wgf_cli.gan.trainer", "rich"), ("wgf_cli.forecast.train", "typer"),
    ("wgf_cli.meanfield.particles", "omegaconf"), ("wgf_cli.gdelt.build", "wgf_cli.presets"),
])
def test_engines_never_import_the_cli_stack(config, graph, importer, imported):
    assert not _check(config, "engines-plain", graph, (importer, imported)).kept


@pytest.mark.parametrize("importer, imported", [
    ("wgf_cli.commands", "wgf_cli.launch"), ("wgf_cli.report", "hydra"), ("wgf_cli.summarize", "typer"),
])
def test_the_reporting_layer_stays_hydra_free(config, graph, importer, imported):
    assert not _check(config, "reporting-hydra-free", graph, (importer, imported)).kept


@pytest.mark.parametrize("importer, imported", [
    ("wgf_cli.info.spectral", "wgf_cli.info.fast"),   # the cycle entropy <-> fast, reintroduced
    ("wgf_cli.commands", "wgf_cli.catalog"),          # catalog -> commands already
])
def test_a_cycle_breaks_the_acyclic_contract(config, graph, importer, imported):
    assert not _check(config, "acyclic", graph, (importer, imported)).kept


def test_report_titles_are_the_cli_help_first_lines():
    """The report takes each subcommand's title from the command table, not from the Typer app:
    the table and the first line of ``wgf CMD --help`` say the same."""
    from wgf_cli.cli import app
    from wgf_cli.commands import COMMANDS
    from wgf_cli.report import _title

    helps = {(c.name or c.callback.__name__.replace("_", "-")): c.callback.__doc__ for c in app.registered_commands}
    for name, command in COMMANDS.items():
        assert command.title, name
        assert helps[name].strip().splitlines()[0] == command.title, name
        assert _title(name) == command.title


def test_report_and_commands_load_without_hydra_or_typer():
    code = ("import sys, wgf_cli.report, wgf_cli.summarize, wgf_cli.commands; "
            "bad = sorted(m for m in ('hydra', 'omegaconf', 'typer', 'wgf_cli.cli', 'wgf_cli.launch') "
            "if m in sys.modules); print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
