"""The report page of ``make reproduce``: ``report.md`` and a self-contained ``index.html``.

    wgf report [RUNS_DIR] [--out DIR]        (defaults: outputs/reproduce -> outputs/report)

``RUNS_DIR`` holds one folder per preset run, ``<cmd>-<preset>/``, and ``reproduce.json``
(written by :mod:`wgf_cli.reproduce`: which command and preset each folder ran, its status
and error, and the provenance of the reproduction).  Any other folder works too: a run
folder, a sweep folder or any folder above run folders; each run found is reported, with
the claims of its preset when it ran one (``experiment=NAME``).  The page has one section
per subcommand: a claims table (each claim of
:mod:`wgf_cli.presets` with the measured value, the threshold and pass/fail), any tables the
experiment module adds next to published references (an optional
``report_section(runs) -> str`` of Markdown), and per run its key numbers and figures.
Figures are copied next to ``report.md`` (``figures/``) and embedded in ``index.html`` as
data URIs, so the folder opens offline and can be moved as it is.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from wgf_cli.commands import COMMANDS
from wgf_cli.run import atomic_write, read_file, write_json

MANIFEST = "reproduce.json"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple) and value and all(isinstance(v, int | float) for v in value):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"  # e.g. an interval
    return "—" if value is None else str(value)


def load_manifest(runs_dir: Path) -> dict[str, dict[str, Any]]:
    """``{run name: {"cmd", "preset", "status", "error"}}`` from ``reproduce.json`` (empty if none)."""
    return read_file(Path(runs_dir) / MANIFEST, {}).get("runs", {})


def save_manifest(runs_dir: Path, runs: dict[str, dict[str, Any]], **extra: Any) -> Path:
    return write_json(Path(runs_dir) / MANIFEST, {"runs": runs, **extra})


def _presets() -> dict[tuple[str, str], Any]:
    return {(cmd, p.name): p for cmd, c in COMMANDS.items() for p in c.experiment().PRESETS}


def discover(root: Path) -> dict[str, dict[str, Any]]:
    """A manifest for any folder: every run folder at or under ``root`` (``run.json`` names its
    subcommand; ``.hydra/overrides.yaml`` its preset, if any).  Jobs of a sweep are listed as
    ``<sweep>/<job>``."""
    root = Path(root)
    runs: dict[str, dict[str, Any]] = {}
    found = sorted({p.parent for p in root.rglob("run.json")} | ({root} if (root / "run.json").is_file() else set()))
    for folder in found:
        info = read_file(folder / "run.json", {})
        cmd = info.get("command")
        if cmd not in COMMANDS:
            continue
        preset = next((str(o).split("=", 1)[1] for o in read_file(folder / ".hydra" / "overrides.yaml", [])
                       if str(o).split("=", 1)[0] == "experiment"), None)
        name = folder.name if folder == root else str(folder.relative_to(root))
        runs[name] = {"cmd": cmd, "preset": preset, "folder": str(folder),
                      "status": read_file(folder / "status.json", {}).get("status", "missing"), "error":
                      read_file(folder / "status.json", {}).get("error")}
    return runs


def collect(runs_dir: Path) -> list[dict[str, Any]]:
    """One record per run of the manifest, in preset order: summary, claims and figures."""
    from wgf_cli.presets import Preset

    runs_dir = Path(runs_dir)
    manifest = load_manifest(runs_dir) if (runs_dir / MANIFEST).is_file() else discover(runs_dir)
    known = _presets()
    order = {key: i for i, key in enumerate(known)}
    commands = list(COMMANDS)
    rows = []
    for name, entry in manifest.items():
        key = (entry["cmd"], entry["preset"])
        preset = known.get(key)
        if preset is None and "folder" not in entry:  # a preset that no longer exists
            continue
        if preset is None:  # a plain run: its subcommand's headline keys, no claims
            headline = getattr(COMMANDS[entry["cmd"]].experiment(), "HEADLINE", [])
            preset = Preset(name, "a run folder", list(headline))
            order[key] = len(known) + commands.index(entry["cmd"])
        folder = Path(entry["folder"]) if "folder" in entry else runs_dir / name
        summary = read_file(folder / "summary.json", {})
        status = entry.get("status") or read_file(folder / "status.json", {}).get("status", "missing")
        claims = []
        for c in preset.claims:
            value, ok = c.check(summary) if status == "completed" else (summary.get(c.key), False)
            claims.append({"run": name, "text": c.text, "key": c.key, "value": value, "op": c.op,
                           "threshold": c.threshold, "passed": ok})
        plots = folder / "plots"
        figures = preset.figures or sorted(p.name for p in plots.glob("*") if p.suffix in {".png", ".gif"})
        rows.append({"name": name, "cmd": entry["cmd"], "preset": preset, "folder": folder,
                     "status": status, "error": entry.get("error"), "summary": summary,
                     "claims": claims, "figures": [f for f in figures if (plots / f).exists()],
                     "order": order[key]})
    return sorted(rows, key=lambda r: r["order"])


def claims_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for r in rows for c in r["claims"]]


def _sections(rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for r in rows:
        if not out or out[-1][0] != r["cmd"]:
            out.append((r["cmd"], []))
        out[-1][1].append(r)
    return out


def fmt_pair(value: Any, threshold: Any) -> tuple[str, str]:
    """Value and threshold printed with enough digits to tell them apart: 4 significant
    digits, more while two different numbers print as the same number (17 tell any two
    floats apart).
    Rounding keeps the order, so the printed pair passes or fails as the numbers do."""
    def number(text: str) -> Any:
        try:
            return float(text)
        except ValueError:
            return text

    for digits in range(4, 18):
        a, b = (f"{v:.{digits}g}" if isinstance(v, float) else _fmt(v) for v in (value, threshold))
        if number(a) != number(b) or value == threshold:
            break
    return a, b


def _claims_table(claims: list[dict[str, Any]]) -> list[str]:
    lines = ["| run | claim | measured | threshold | result |", "|---|---|---|---|---|"]
    for c in claims:
        value, threshold = fmt_pair(c["value"], c["threshold"])
        text = str(c["text"]).replace("|", "\\|")  # a pipe in the text would end the cell
        lines.append(f"| {c['run']} | {text} (`{c['key']}`) | {value} | {c['op']} {threshold} | "
                     f"{'pass' if c['passed'] else '**FAIL**'} |")
    return lines


def _title(cmd: str) -> str:
    """The subcommand's one-line description (the first line of its ``--help``)."""
    command = COMMANDS.get(cmd)
    return command.title if command is not None else ""


def _anchor(name: str) -> str:
    """A heading / anchor for a run name (sweep jobs are ``sweep/0``)."""
    return re.sub(r"[^\w-]+", "-", name)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _provenance_table(prov: dict[str, Any]) -> list[str]:
    git = prov.get("git") or {}
    commit = (git.get("commit") or "unknown")[:12] + (" (with local changes)" if git.get("dirty") else "")
    versions = ", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items())
    wall = prov.get("wall_s")
    return ["| provenance | |", "|---|---|", f"| commit | {commit} |", f"| versions | {versions} |",
            f"| CPU | {prov.get('cpu')} ({prov.get('cores')} cores; {prov.get('jobs')} presets at a time) |",
            f"| platform | {prov.get('platform')} |", f"| date | {prov.get('date')} |",
            f"| wall time | {_fmt(wall)} s |" if wall is not None else "| wall time | — |", ""]


def markdown(rows: list[dict[str, Any]], profile: str = "quick", provenance: dict[str, Any] | None = None,
             source: str = "`make reproduce`") -> str:
    """The report as Markdown; figures referenced as ``figures/<run>/<file>``."""
    claims = claims_of(rows)
    n_pass = sum(c["passed"] for c in claims)
    lines = [
        "# wgf — reproduction report", "",
        f"Generated {datetime.now().astimezone().isoformat(timespec='seconds')} from {source} "
        f"(profile `{profile}`). Every run folder keeps its `summary.json`, `metrics.csv` and `plots/`.", "",
        *(_provenance_table(provenance) if provenance else []),
        f"**Claims: {n_pass}/{len(claims)} pass.**", "",
        "| run | status | wall (s) | key numbers |", "|---|---|---|---|",
    ]
    for r in rows:
        nums = ", ".join(f"{k}={_fmt(r['summary'][k])}" for k in r["preset"].keys if k in r["summary"])
        wall = _fmt(r["summary"].get("wall_s"))
        lines.append(f"| [{r['name']}](#{_anchor(r['name'])}) | {r['status']} | {wall} | {nums} |")
    for cmd, runs in _sections(rows):
        lines += ["", f"## wgf {cmd}", ""]
        module = COMMANDS[cmd].experiment()
        lines += [_title(cmd), ""]
        section_claims = claims_of(runs)
        if section_claims:
            lines += [f"### Claims ({sum(c['passed'] for c in section_claims)}/{len(section_claims)} pass)", ""]
            lines += _claims_table(section_claims)
        extra = getattr(module, "report_section", None)
        if extra is not None:
            lines += ["", extra([{k: r[k] for k in ("name", "summary", "folder", "status")} for r in runs]).strip()]
        for r in runs:
            ran = f"`wgf {cmd} experiment={r['preset'].name}`" if r["claims"] or r["preset"].what != "a run folder" \
                else f"`wgf {cmd}`"
            lines += ["", f"### {_anchor(r['name'])}", "", r["preset"].what, "",
                      f"{ran} → `{_shown(r['folder'])}`", ""]
            if r["status"] != "completed":
                lines += [f"**{r['status']}**: {r['error'] or 'see status.json'}", ""]
            if r["summary"]:
                lines += ["| key | value |", "|---|---|"]
                lines += [f"| {k} | {_fmt(v)} |" for k, v in r["summary"].items()]
                lines.append("")
            lines += [f"![{r['name']} {f}](figures/{r['name']}/{f})" for f in r["figures"]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# a small Markdown -> HTML for exactly what :func:`markdown` writes
# ---------------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em}
th{background:#f3f3f3}tr.fail td{background:#fde2e2}code{background:#f5f5f5;padding:0 .2em}
img{max-width:100%;margin:.4em 0;border:1px solid #eee}h2{border-bottom:2px solid #444;margin-top:2em}"""

# The page reports how many of its figures decoded (the headless-browser test reads it).
_SCRIPT = """window.addEventListener('load',function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0){ok++;}}
document.body.setAttribute('data-images-total',im.length);
document.body.setAttribute('data-images-loaded',ok);});"""


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\[([^\]]+)\]\(#([^)]+)\)", r'<a href="#\2">\1</a>', text)


def _data_uri(path: Path) -> str:
    mime = "image/gif" if path.suffix == ".gif" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def to_html(md: str, base: Path) -> str:
    """HTML for the Markdown of :func:`markdown`; images under ``base`` become data URIs."""
    out, table = [], []

    def flush_table() -> None:
        if not table:
            return
        rows = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
                for line in table]
        head, body = rows[0], rows[2:]
        out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>")
        for r in body:
            cls = ' class="fail claim"' if "**FAIL**" in r else (' class="claim"' if r[-1:] == ["pass"] else "")
            out.append(f"<tr{cls}>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>")
        out.append("</table>")
        table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if m := re.match(r"^(#{1,3}) (.*)$", line):
            level, title = len(m.group(1)), m.group(2)
            anchor = title if re.fullmatch(r"[\w-]+", title) else re.sub(r"\W+", "-", title.lower()).strip("-")
            out.append(f'<h{level} id="{html.escape(anchor)}">{_inline(title)}</h{level}>')
        elif m := re.match(r"^!\[([^\]]*)\]\(([^)]+)\)$", line):
            path = base / m.group(2)
            src = _data_uri(path) if path.exists() else html.escape(m.group(2))
            out.append(f'<img alt="{html.escape(m.group(1))}" src="{src}">')
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    flush_table()
    body = "\n".join(out)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>wgf — reproduction report'
            f"</title><style>{_CSS}</style><script>{_SCRIPT}</script></head>\n<body>\n{body}\n</body></html>\n")


def build(runs_dir: str | Path = "outputs/reproduce", out: str | Path = "outputs/report",
          profile: str = "quick") -> tuple[Path, Path, list[dict[str, Any]]]:
    """Write ``out/report.md``, ``out/index.html`` and ``out/figures/``; return them and the claims."""
    runs_dir, out = Path(runs_dir).resolve(), Path(out).resolve()
    rows = collect(runs_dir)
    figures = out / "figures"
    if figures.exists():
        shutil.rmtree(figures)
    for r in rows:
        for f in r["figures"]:
            (figures / r["name"]).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(r["folder"]) / "plots" / f, figures / r["name"] / f)
    prov = read_file(runs_dir / MANIFEST, {}).get("provenance")
    source = "`make reproduce`" if (runs_dir / MANIFEST).is_file() else f"the runs under `{_shown(runs_dir)}`"
    md = markdown(rows, profile, prov, source)
    md_path = atomic_write(out / "report.md", md)
    html_path = atomic_write(out / "index.html", to_html(md, out))
    return md_path, html_path, claims_of(rows)
