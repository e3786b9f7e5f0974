"""mkdocs hooks: pages and files generated at build time, so that nothing is typed twice.

* ``figures/*.png``: the figures of ``benchmarks/results/figures/`` (shared with the benchmarks).
* ``benchmarks.md``: ``benchmarks/README.md`` (links to the figures rewritten).
* ``results.md``: one section per ``benchmarks/results/*.json``: its description, machine and
  the tables the benchmark wrote.
* ``changelog.md``: ``CHANGELOG.md``.
* A subcommand page that the nav names but that is not written yet gets its usage generated
  from ``conf/`` (config groups, presets): the same listing as ``wgf CMD --help``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]


def _results_page() -> str:
    out = ["# Benchmark data", "",
           "Generated from `benchmarks/results/*.json` (`make bench` rewrites them). Ratios are",
           "measured side by side in one process; absolute times depend on the machine named.", ""]
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        data = json.loads(path.read_text())
        out.append(f"## `{path.name}`")
        out.append("")
        if isinstance(data, dict):
            if data.get("description"):
                out += [str(data["description"]), ""]
            machine = data.get("machine")
            if isinstance(machine, dict):
                out += ["Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()), ""]
            tables = data.get("tables_md") or data.get("table_md")
            if isinstance(tables, dict):
                tables = list(tables.values())
            for table in [tables] if isinstance(tables, str) else tables or []:
                out += [str(table).strip(), ""]
            if not tables:
                keys = [k for k in data if k not in ("machine", "description")]
                out += ["Keys: " + ", ".join(f"`{k}`" for k in keys), ""]
    return "\n".join(out) + "\n"


def _command_page(name: str) -> str:
    sys.path.insert(0, str(ROOT))
    from wgf_cli import catalog

    presets = catalog.presets(name)
    lines = [f"# `wgf {name}`", "", "```", f"wgf {name} --help", "```", "", "```text",
             catalog.config_help(name).rstrip(), "```", "", "## Presets", "", "| preset | what it shows |", "|---|---|"]
    lines += [f"| `{p}` | {what} |" for p, what in presets]
    return "\n".join(lines) + "\n"


def on_files(files: Files, config) -> Files:
    site, urls = config["site_dir"], config["use_directory_urls"]
    for png in sorted((ROOT / "benchmarks" / "results" / "figures").glob("*.png")):
        files.append(File(f"figures/{png.name}", str(ROOT / "benchmarks" / "results"), site, urls))
    bench = (ROOT / "benchmarks" / "README.md").read_text()
    bench = re.sub(r"\]\((?:\.\./)?(?:benchmarks/)?results/figures/", "](figures/", bench)
    files.append(File.generated(config, "benchmarks.md", content=bench))
    files.append(File.generated(config, "results.md", content=_results_page()))
    files.append(File.generated(config, "changelog.md", content=(ROOT / "CHANGELOG.md").read_text()))
    present = {f.src_uri for f in files}
    for name in ("jko", "meanfield", "wgan", "renyi-mi", "gdelt-build", "gdelt-train"):
        if f"{name}.md" not in present:
            files.append(File.generated(config, f"{name}.md", content=_command_page(name)))
    return files
