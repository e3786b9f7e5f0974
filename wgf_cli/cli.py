"""`wgf`: a thin Typer CLI.  Typed flags become Hydra overrides, trailing ``key=value``
tokens pass through; :mod:`wgf_cli.launch` does the rest.  Heavy imports happen inside the
commands so that ``wgf --help`` is instant."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="wgf",
    help="Experiment runner for Wasserstein gradient flows and their neighbours.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Overrides = Annotated[
    list[str] | None,
    typer.Argument(help="Hydra overrides key=value (e.g. energy=porous_medium solver.tau=5e-4)",
                   show_default=False),
]
#: subcommands accept trailing ``key=value`` Hydra overrides
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
Multirun = Annotated[bool, typer.Option("-m", "--multirun", help="Sweep: comma lists become jobs.")]
ShowConfig = Annotated[bool, typer.Option("--show-config", help="Print the resolved config; run nothing.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no table: print the run folder only.")]
Device = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda", show_default=False)]
Seed = Annotated[int | None, typer.Option("--seed", help="Random seed.", show_default=False)]


@app.callback()
def _root() -> None:
    """Experiment runner for Wasserstein gradient flows and their neighbours.

    Each subcommand takes Hydra overrides (key=value) and writes a run folder under outputs/.
    """


def _err(message: str) -> None:
    typer.echo(f"wgf: error: {message}", err=True)


def _dispatch(name: str, flags: dict[str, Any], overrides: list[str] | None, multirun: bool,
              show_config: bool, quiet: bool) -> None:
    """Run subcommand ``name`` (an entry of :data:`wgf_cli.commands.COMMANDS`)."""
    from wgf_cli.commands import COMMANDS
    from wgf_cli.errors import ConfigError
    from wgf_cli.launch import launch
    from wgf_cli.launch import show_config as render

    command = COMMANDS[name]
    args = [f"{k}={v}" for k, v in flags.items() if v is not None] + list(overrides or [])
    try:
        if show_config:
            typer.echo(render(command, args), nl=False)
            return
        result = launch(command, args, multirun=multirun,
                        progress=not quiet and sys.stderr.isatty())
    except ConfigError as exc:
        _err(str(exc))
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _err("interrupted; the run folder keeps the metrics so far (status.json: interrupted)")
        raise typer.Exit(130) from None
    _report(result, quiet, getattr(command.experiment(), "HEADLINE", []))
    if any(job.status != "completed" for job in result.jobs):
        raise typer.Exit(1)


def _report(result, quiet: bool, headline: list[str]) -> None:
    """The run folder and a rich table (summary, or one row per sweep job with its headline key)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False, soft_wrap=True)
    failed = [j for j in result.jobs if j.status != "completed"]
    if quiet:
        typer.echo(str(result.root))
    elif result.multirun:
        table = Table(title=f"sweep: {len(result.jobs)} jobs", show_lines=False)
        for col in ("job", "overrides", "status", "key result"):
            table.add_column(col)
        for i, job in enumerate(result.jobs):
            key = next((f"{k}={job.summary[k]:.4g}" for k in headline
                        if isinstance(job.summary.get(k), float)), "")
            table.add_row(str(i), " ".join(o for o in job.overrides if not o.startswith("hydra.")),
                          job.status, key)
        console.print(table)
        console.print(f"sweep folder: [bold]{result.root}[/bold]  (summary.csv)")
    else:
        job = result.jobs[0]
        if job.summary:
            table = Table(title="summary", show_header=True)
            table.add_column("key")
            table.add_column("value", justify="right")
            for k, v in job.summary.items():
                table.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
            console.print(table)
        console.print(f"run folder: [bold]{job.run_dir}[/bold]")
    for job in failed:
        _err(f"run failed: {job.error} (see {job.run_dir}/status.json)")


@app.command("renyi-mi", context_settings=PASS_THROUGH)
def renyi_mi(
    overrides: Overrides = None,
    task: Annotated[str | None, typer.Option("--task", help="infoplane | ntk | scaling | estimate",
                                             show_default=False)] = None,
    alpha: Annotated[float | None, typer.Option("--alpha", help="Rényi order (> 0; 1: von Neumann)",
                                                show_default=False)] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Training epochs (train.epochs).",
                                               show_default=False)] = None,
    width: Annotated[str | None, typer.Option(
        "--width", help="Kernel width rule: silverman | dimnorm | knn:K | align | fixed:V",
        show_default=False)] = None,
    method: Annotated[str | None, typer.Option(
        "--method", help="Entropy: auto | eig | frobenius (alpha=2) | fast", show_default=False)] = None,
    device: Device = None,
    seed: Seed = None,
    multirun: Multirun = False,
    show_config: ShowConfig = False,
    quiet: Quiet = False,
) -> None:
    """Matrix-based Rényi entropy and mutual information of network layers (bits).

    Examples: `wgf renyi-mi` (information plane of an MLP on digits);
    `wgf renyi-mi experiment=ntk`; `wgf renyi-mi experiment=scaling`;
    `wgf renyi-mi -m alpha=1.01,2 kernel.scale=0.5,1,2`.
    """
    flags = {"task": task, "alpha": alpha, "train.epochs": epochs, "kernel.width": width,
             "entropy.method": method, "device": device, "seed": seed}
    _dispatch("renyi-mi", flags, overrides, multirun, show_config, quiet)
@app.command(context_settings=PASS_THROUGH)
def meanfield(
    overrides: Overrides = None,
    mode: Annotated[str | None, typer.Option(
        "--mode", help="train | compare | width", show_default=False)] = None,
    method: Annotated[str | None, typer.Option(
        "--method", help="gd | sgd | jko_grid | wprox (mode=train)", show_default=False)] = None,
    width: Annotated[int | None, typer.Option("--width", "-w", help="Neurons m (model.width).",
                                              show_default=False)] = None,
    time: Annotated[float | None, typer.Option("--time", help="Final mean-field time T.",
                                               show_default=False)] = None,
    device: Device = None,
    seed: Seed = None,
    multirun: Multirun = False,
    show_config: ShowConfig = False,
    quiet: Quiet = False,
) -> None:
    """Two-layer ReLU networks in the mean-field limit: particle gd vs the Wasserstein flow.

    Examples: `wgf meanfield --method jko_grid`; `wgf meanfield experiment=compare`;
    `wgf meanfield experiment=width`; `wgf meanfield -m model.width=64,256,1024`.
    """
    flags = {"mode": mode, "method": method, "model.width": width, "time": time, "device": device,
             "seed": seed}
    _dispatch("meanfield", flags, overrides, multirun, show_config, quiet)


@app.command(context_settings=PASS_THROUGH)
def wgan(
    overrides: Overrides = None,
    data: Annotated[str | None, typer.Option(
        "--data", help="gauss2_1d | ring8 | grid25 | swissroll | ring8_pacgan | grid25_pacgan",
        show_default=False)] = None,
    loss: Annotated[str | None, typer.Option(
        "--loss", help="gan | gan_ns | wgan_clip | wgan_gp | sinkhorn", show_default=False)] = None,
    iterations: Annotated[int | None, typer.Option("--iterations", help="Generator iterations.",
                                                   show_default=False)] = None,
    device: Device = None,
    seed: Seed = None,
    multirun: Multirun = False,
    show_config: ShowConfig = False,
    quiet: Quiet = False,
) -> None:
    """GAN / Wasserstein-GAN training dynamics on toy distributions, and the Dirac-GAN pendulum.

    Examples: `wgf wgan --data ring8 --loss wgan_gp`; `wgf wgan loss=wgan_clip loss.clip=0.01`;
    `wgf wgan experiment=dirac`; `wgf wgan experiment=wgan_ring8_pacgan seeds=[0,1,2,3,4]`.
    """
    flags = {"data": data, "loss": loss, "iterations": iterations, "device": device, "seed": seed}
    _dispatch("wgan", flags, overrides, multirun, show_config, quiet)


@app.command("gdelt-build", context_settings=PASS_THROUGH)
def gdelt_build(
    overrides: Overrides = None,
    source: Annotated[str | None, typer.Option("--source", help="synthetic | dir | download",
                                               show_default=False)] = None,
    input: Annotated[str | None, typer.Option("--input", help="source=dir: folder of GDELT files.",
                                              show_default=False)] = None,
    output_dir: Annotated[str | None, typer.Option("--output-dir", help="Build folder (default: the run folder).",
                                                   show_default=False)] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Parallel processes.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild inputs already in the manifest.")] = False,
    device: Device = None,
    seed: Seed = None,
    multirun: Multirun = False,
    show_config: ShowConfig = False,
    quiet: Quiet = False,
) -> None:
    """Raw GDELT event files -> clean events, daily descriptors and training sequences.

    Examples: `wgf gdelt-build` (synthetic); `wgf gdelt-build source=dir input=PATH`;
    `wgf gdelt-build source=download source.start=2015-06-01 source.end=2015-06-30`.
    """
    flags = {"source": source, "input": input, "output_dir": output_dir, "workers": workers,
             "force": "true" if force else None, "device": device, "seed": seed}
    _dispatch("gdelt-build", flags, overrides, multirun, show_config, quiet)


@app.command("gdelt-train", context_settings=PASS_THROUGH)
def gdelt_train(
    overrides: Overrides = None,
    build: Annotated[str | None, typer.Option("--build", help="A gdelt-build folder (data.build_dir).",
                                              show_default=False)] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Training epochs (train.epochs).",
                                               show_default=False)] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Run folder to continue (resume).",
                                               show_default=False)] = None,
    device: Device = None,
    seed: Seed = None,
    multirun: Multirun = False,
    show_config: ShowConfig = False,
    quiet: Quiet = False,
) -> None:
    """Forecast a country's next-day GDELT events with a causal transformer over days.

    Examples: `wgf gdelt-train experiment=gdelt_train`; `wgf gdelt-train --build PATH
    --epochs 20`; `wgf gdelt-train resume=outputs/2026-01-01/12-00-00`.
    """
    flags = {"data.build_dir": build, "train.epochs": epochs, "resume": resume, "device": device,
             "seed": seed}
    _dispatch("gdelt-train", flags, overrides, multirun, show_config, quiet)


@app.command()
def report(
    runs_dir: Annotated[str, typer.Argument(help="Folder of the preset runs (make reproduce).")] = "outputs/reproduce",
    out: Annotated[str, typer.Option("--out", help="Folder of report.md and index.html.")] = "outputs/report",
) -> None:
    """Build the report page (report.md + self-contained index.html) from `make reproduce` runs."""
    from pathlib import Path

    if not (Path(runs_dir) / "reproduce.json").exists():
        _err(f"{runs_dir}/reproduce.json not found; run `make reproduce` (or python -m wgf_cli.reproduce) first")
        raise typer.Exit(2)
    from wgf_cli.report import build

    md, page, claims = build(runs_dir, out)
    failed = [c for c in claims if not c["passed"]]
    typer.echo(f"{page}\n{md}\nclaims: {len(claims) - len(failed)}/{len(claims)} pass")
    for c in failed:
        _err(f"claim failed: {c['run']}: {c['text']} ({c['key']}={c['value']}, needs {c['op']} {c['threshold']})")
    if failed:
        raise typer.Exit(1)


@app.command()
def summarize(
    dirs: Annotated[list[str], typer.Argument(help="Run folders, sweep folders or any folder above them.")],
    keys: Annotated[str | None, typer.Option(
        "--keys", help="Comma list of summary keys, or 'all' (default: headline keys + wall_s).",
        show_default=False)] = None,
    csv: Annotated[str | None, typer.Option("--csv", help="Also write the table to this CSV file.",
                                            show_default=False)] = None,
) -> None:
    """One table from any set of run folders (single runs and sweeps)."""
    from rich.console import Console
    from rich.table import Table

    from wgf_cli.summarize import table

    try:
        df = table(dirs, keys.split(",") if keys else None)
    except FileNotFoundError as exc:
        _err(f"{exc}; give run folders, sweep folders or a folder above them")
        raise typer.Exit(2) from None
    if df.empty:
        _err(f"no run folders (with status.json) under {' '.join(dirs)}")
        raise typer.Exit(2)
    if csv:
        from wgf_cli.run import atomic_write

        atomic_write(csv, df.to_csv(index=False))
    t = Table(title=f"{len(df)} runs")
    for col in df.columns:
        t.add_column(col, overflow="fold")
    for _, row in df.iterrows():
        t.add_row(*[("" if v is None or v != v else f"{v:.4g}" if isinstance(v, float) else str(v))
                    for v in row.tolist()])
    Console(soft_wrap=True).print(t)
    for k in df.attrs.get("missing", []):
        _err(f"key {k!r} is in no summary.json")


@app.command(context_settings=PASS_THROUGH)
def jko(
    overrides: Overrides = None,
    grid: Annotated[int | None, typer.Option("--grid", help="Cells per axis (grid.size).",
                                             show_default=False)] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="JKO steps.", show_default=False)] = None,
    energy: Annotated[str | None, typer.Option(
        "--energy", help="heat | fokker_planck | porous_medium | crowd | aggregation",
        show_default=False)] = None,
    device: Device = None,
    seed: Seed = None,
    multirun: Multirun = False,
    show_config: ShowConfig = False,
    quiet: Quiet = False,
) -> None:
    """Entropic JKO Wasserstein gradient flow of a free energy on a grid.

    Examples: `wgf jko --grid 128`; `wgf jko energy=porous_medium initial=barenblatt`;
    `wgf jko -m solver.gamma_factor=0.5,1,2`.
    """
    flags = {"energy": energy, "grid.size": grid, "steps": steps, "device": device, "seed": seed}
    _dispatch("jko", flags, overrides, multirun, show_config, quiet)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
