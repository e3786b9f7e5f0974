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


@app.command("renyi-mi", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
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


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
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
