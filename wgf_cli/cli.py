"""`wgf`: a thin Typer CLI.  Typed flags become Hydra overrides, trailing ``key=value``
tokens pass through; :mod:`wgf_cli.launch` does the rest.  Heavy imports happen inside the
commands so that ``wgf --help`` and the one-line errors for bad input are instant (no torch
is imported before the input is validated)."""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer >= 0.23 ships its own copy of click, whose exceptions and context it uses
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer on plain click
    import click


def _err(message: str) -> None:
    typer.echo(f"wgf: error: {message}", err=True)


class _Group(TyperGroup):
    """The ``wgf`` group: every usage error (bad type, unknown option or subcommand) is one
    line on stderr and exit code 2, with the closest match where there is one."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()):
            return super().main(argv, prog_name, complete_var, standalone_mode=True, **extra)
        except click.exceptions.ClickException as exc:
            _err(_usage_message(exc))
            sys.exit(exc.exit_code)
        except (typer.Abort, getattr(click.exceptions, "Abort", typer.Abort)):
            _err("aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _usage_message(exc) -> str:
    """One line for a Click usage error, naming the closest subcommand or option."""
    from wgf_cli.catalog import closest

    msg = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if msg.startswith("No such command") and ctx is not None and hasattr(ctx.command, "list_commands"):
        names = sorted(ctx.command.list_commands(ctx))
        word = msg.split("'")[1] if "'" in msg else ""
        match = closest(word, names)
        return (f"unknown subcommand {word!r}" + (f"; did you mean {match}?" if match else "")
                + f" (subcommands: {', '.join(names)})")
    param = getattr(exc, "param", None)
    if type(exc).__name__ == "BadParameter" and param is not None:
        name = next(iter(getattr(param, "opts", []) or []), getattr(param, "name", "value"))
        text = getattr(exc, "message", msg)
        text = text.replace("Input should be a valid", "must be a valid").split(", unable")[0]
        value = _given(exc)
        return f"{name} {text}" + (f", got {value!r}" if value is not None else "")
    if ctx is not None and ctx.parent is not None and ctx.info_name:
        return f"{msg} (see: wgf {ctx.info_name} --help)"
    return msg


def _given(exc) -> Any:
    """The value that failed to convert (pydantic's error, or the token after the option)."""
    cause = exc.__cause__
    if cause is not None and hasattr(cause, "errors"):
        try:
            return cause.errors()[0].get("input")
        except Exception:  # noqa: BLE001 - best effort
            pass
    args = list(sys.argv[1:])
    for i, tok in enumerate(args):
        for opt in getattr(exc.param, "opts", []) or []:
            if tok == opt and i + 1 < len(args):
                return args[i + 1]
            if tok.startswith(opt + "="):
                return tok.split("=", 1)[1]
    return None


class _Command(TyperCommand):
    """A subcommand whose ``--help`` also lists its config groups, their options and its presets."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.name in _FLAG_KEYS and not getattr(self, "_wgf_annotated", False):
            try:
                defaults = _flag_defaults(self.name)
            except Exception:  # noqa: BLE001 - the help must never fail
                defaults = {}
            for param in self.params:
                if param.name in defaults and getattr(param, "help", None) is not None:
                    param.help = f"{param.help.rstrip('.')}; default: {defaults[param.name]}"
            self._wgf_annotated = True
        out = super().format_help(ctx, formatter)
        try:
            from wgf_cli.catalog import config_help

            typer.echo(config_help(self.name))
        except Exception as exc:  # the help must never fail
            typer.echo(f"(config listing unavailable: {exc})")
        return out


def _version(value: bool) -> None:
    if value:
        from wgf_cli import __version__

        typer.echo(f"wgf {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="wgf",
    cls=_Group,
    help="Experiment runner for Wasserstein gradient flows and their neighbours.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass(frozen=True)
class _Flag:
    """A typed flag of a subcommand: its parameter, option names, type, help and config key(s)."""

    param: str
    decls: tuple[str, ...]
    type: type
    help: str
    #: the config key(s) it sets (in this order); ``--help`` shows the first one and its default
    keys: tuple[str, ...]


@dataclass(frozen=True)
class _Spec:
    """A subcommand's typed flags (in the order they become overrides), its ``--help`` examples,
    the order ``--help`` lists the flags in (default: the table's) and whether it can resume."""

    flags: tuple[_Flag, ...]
    examples: str
    shown: tuple[str, ...] = ()
    resume: bool = True


def _flag(param: str, decls: str | tuple[str, ...], kind: type, help: str, *keys: str) -> _Flag:
    return _Flag(param, (decls,) if isinstance(decls, str) else decls, kind, help, keys or (param,))


#: every subcommand of :data:`wgf_cli.commands.COMMANDS`: its typed flags and the examples of its
#: ``--help`` (whose first line is the command's title)
_SPECS: dict[str, _Spec] = {
    "renyi-mi": _Spec((
        _flag("task", "--task", str, "infoplane | ntk | scaling | estimate"),
        _flag("alpha", "--alpha", float, "Rényi order (> 0; 1: von Neumann)"),
        _flag("epochs", "--epochs", int, "Training epochs (train.epochs).", "train.epochs"),
        _flag("width", "--width", str, "Kernel width rule: silverman | dimnorm | knn:K | align | fixed:V",
              "kernel.width"),
        _flag("method", "--method", str, "Entropy: auto | eig | frobenius (alpha=2) | fast", "entropy.method"),
    ), """Examples: `wgf renyi-mi` (information plane of an MLP on digits);
`wgf renyi-mi experiment=ntk`; `wgf renyi-mi experiment=scaling`;
`wgf renyi-mi -m alpha=1.01,2 kernel.scale=0.5,1,2`."""),
    "meanfield": _Spec((
        _flag("mode", "--mode", str, "train | compare | width"),
        _flag("method", "--method", str, "gd | sgd | jko_grid | wprox (mode=train)"),
        _flag("width", ("--width", "-w"), int, "Neurons m (model.width).", "model.width"),
        _flag("time", "--time", float, "Final mean-field time T."),
    ), """Examples: `wgf meanfield --method jko_grid`; `wgf meanfield experiment=compare`;
`wgf meanfield experiment=width`; `wgf meanfield -m model.width=64,256,1024`."""),
    "wgan": _Spec((
        _flag("data", "--data", str, "gauss2_1d | ring8 | grid25 | swissroll | ring8_pacgan | grid25_pacgan"),
        _flag("loss", "--loss", str, "gan | gan_ns | wgan_clip | wgan_gp | sinkhorn"),
        _flag("iterations", "--iterations", int, "Generator iterations."),
    ), """Examples: `wgf wgan --data ring8 --loss wgan_gp`; `wgf wgan loss=wgan_clip loss.clip=0.01`;
`wgf wgan experiment=dirac`; `wgf wgan experiment=wgan_ring8_pacgan seeds=[0,1,2,3,4]`."""),
    "gdelt-build": _Spec((
        _flag("source", "--source", str, "synthetic | dir | download"),
        _flag("input", "--input", str, "source=dir: folder of GDELT files."),
        _flag("output_dir", "--output-dir", str, "Build folder (default: the run folder)."),
        _flag("workers", "--workers", int, "Parallel processes."),
        _flag("force", "--force", bool, "Rebuild inputs already in the manifest."),
    ), """Examples: `wgf gdelt-build` (synthetic); `wgf gdelt-build source=dir input=PATH`;
`wgf gdelt-build source=download source.start=2015-06-01 source.end=2015-06-30`."""),
    "gdelt-train": _Spec((
        _flag("build", "--build", str, "A gdelt-build folder (data.build_dir).", "data.build_dir"),
        _flag("epochs", "--epochs", int, "Training epochs (train.epochs).", "train.epochs"),
    ), """Examples: `wgf gdelt-train experiment=gdelt_train`; `wgf gdelt-train --build PATH
--epochs 20`; `wgf gdelt-train --resume outputs/2026-01-01/12-00-00 --epochs 40`."""),
    "gdelt-forecast": _Spec((
        _flag("run", "--run", str, "A finished gdelt-train run folder (run)."),
        _flag("build", "--build", str, "A gdelt-build folder (build; default: the run's)."),
    ), """Examples: `wgf gdelt-forecast run=outputs/2026-01-01/12-00-00`; `wgf gdelt-forecast
run=RUN build=NEW_BUILD 'countries=[NI,LY]'`.""", resume=False),
    "jko": _Spec((
        _flag("grid", "--grid", int, "Cells per axis (grid.size).", "grid.size"),
        _flag("energy", "--energy", str, "heat | fokker_planck | porous_medium | crowd | aggregation | keller_segel"),
        # --steps sets the steps run and the energy's default for them: one value in --show-config
        _flag("steps", "--steps", int, "JKO steps.", "steps", "energy.steps"),
    ), """Examples: `wgf jko --grid 128`; `wgf jko energy=porous_medium initial=barenblatt`;
`wgf jko -m solver.gamma_factor=0.5,1,2`.""", shown=("grid", "steps", "energy")),
    "ot": _Spec((
        _flag("task", "--task", str, "geodesic | plans | map | duality"),
        _flag("grid", "--grid", int, "Cells per axis (grid.size).", "grid.size"),
    ), """Examples: `wgf ot` (Benamou-Brenier geodesic between two Gaussians);
`wgf ot target=gaussian_mixture solver=entropic`; `wgf ot task=plans eps='[0.1,1,10]'`;
`wgf ot task=map`; `wgf ot task=duality`."""),
}
#: the config key(s) behind each typed flag of each subcommand (its parameter name -> keys);
#: ``--help`` shows each flag's key and its default from the config
_FLAG_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    name: {f.param: f.keys for f in spec.flags} for name, spec in _SPECS.items()}
_COMMON_FLAGS = {"device": ("device",), "seed": ("seed",)}


def _flags(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """``{config key: value}`` of the typed flags of subcommand ``name`` that were given."""
    out: dict[str, Any] = {}
    bools = {f.param for f in _SPECS[name].flags if f.type is bool}
    for param, keys in {**_FLAG_KEYS[name], **_COMMON_FLAGS}.items():
        value = values.get(param)
        for key in keys:  # a switch sets its key only when given
            out[key] = ("true" if value else None) if param in bools else value
    return out


def _flag_defaults(name: str) -> dict[str, str]:
    """Parameter name -> ``key, default value`` text for ``--help`` (from the composed config)."""
    from omegaconf import OmegaConf

    from wgf_cli import catalog
    from wgf_cli.commands import COMMANDS
    from wgf_cli.launch import _compose_raw

    cfg = _compose_raw(COMMANDS[name], [])
    groups = {g.name: g.default for g in catalog.groups(COMMANDS[name].config_name)}
    out = {}
    for param, keys in {**_FLAG_KEYS[name], **_COMMON_FLAGS}.items():
        key = keys[0]
        if key in groups:
            value = groups[key]
        else:
            try:
                value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
            except Exception:  # noqa: BLE001 - an interpolation that needs more
                value = None
        out[param] = f"{key} = {value}" if value is not None else key
    return out


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


Resume = Annotated[str | None, typer.Option(
    "--resume", metavar="RUN_DIR",
    help="Continue the run (or sweep) in RUN_DIR with its saved config; only steps, epochs, "
         "output options, device and threads may change.", show_default=False)]


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Experiment runner for Wasserstein gradient flows and their neighbours.

    Each subcommand takes Hydra overrides (key=value) and writes a run folder under outputs/.
    `wgf presets` lists the presets; `wgf CMD --help` the config groups of CMD.
    """


def _dispatch(name: str, flags: dict[str, Any], overrides: list[str] | None, multirun: bool,
              show_config: bool, quiet: bool, resume: str | None = None) -> None:
    """Run subcommand ``name`` (an entry of :data:`wgf_cli.commands.COMMANDS`)."""
    from wgf_cli.commands import COMMANDS
    from wgf_cli.errors import ConfigError, Interrupted, NothingToDo
    from wgf_cli.launch import launch
    from wgf_cli.launch import show_config as render

    command = COMMANDS[name]
    args = [f"{k}={v}" for k, v in flags.items() if v is not None] + list(overrides or [])
    try:
        _check_flags(name, list(overrides or []))
        if show_config:
            typer.echo(render(command, args, resume=resume), nl=False)
            return
        result = launch(command, args, multirun=multirun, resume=resume,
                        progress=not quiet and sys.stderr.isatty())
    except ConfigError as exc:
        _err(str(exc))
        raise typer.Exit(2) from None
    except NothingToDo as exc:
        typer.echo(f"wgf: {exc}", err=True)
        raise typer.Exit(0) from None
    except Interrupted as exc:
        what = "sweep folder" if exc.multirun else "run folder"
        _err(f"interrupted; {what}: {exc.folder} (status.json: interrupted); "
             f"continue with: wgf {name} --resume {exc.folder}")
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        _err("interrupted before the run started; nothing was written")
        raise typer.Exit(130) from None
    _report(result, quiet, getattr(command.experiment(), "HEADLINE", []))
    if any(job.status != "completed" for job in result.jobs):
        raise typer.Exit(1)


def _check_flags(name: str, tokens: list[str]) -> None:
    """An unknown ``--flag`` among the pass-through tokens: one line with the closest flag."""
    from wgf_cli.catalog import closest
    from wgf_cli.errors import ConfigError

    flags = [t for t in tokens if t.startswith("-")]
    if not flags:
        return
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - older typer on plain click
        from click import get_current_context
    ctx = get_current_context(silent=True)
    known = sorted({o for p in (ctx.command.params if ctx else []) for o in p.opts if o.startswith("--")})
    word = flags[0].split("=", 1)[0]
    match = closest(word, known)
    hint = f"; did you mean {match}?" if match else ""
    raise ConfigError(f"unknown option {word}{hint} (options of wgf {name}: {', '.join(known)}; "
                      "config keys go as key=value)")


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


def presets(
    command: Annotated[str | None, typer.Argument(help="A subcommand (default: all).", show_default=False)] = None,
) -> None:
    """The presets of every subcommand (`wgf CMD experiment=NAME`) and what each shows."""
    import textwrap

    from wgf_cli import catalog
    from wgf_cli.commands import COMMANDS

    if command is not None and command not in COMMANDS:
        match = catalog.closest(command, COMMANDS)
        _err(f"unknown subcommand {command!r}" + (f"; did you mean {match}?" if match else "")
             + f" (subcommands: {', '.join(COMMANDS)})")
        raise typer.Exit(2)
    for name in [command] if command else list(COMMANDS):
        typer.echo(f"wgf {name} experiment=NAME")
        for preset, what in catalog.presets(name):
            typer.echo(textwrap.fill(what, width=100, initial_indent=f"  {preset:<26} ",
                                     subsequent_indent=" " * 29))
        typer.echo("")


def report(
    runs_dir: Annotated[str, typer.Argument(
        help="A `make reproduce` folder, a run or sweep folder, or any folder above run folders.")
    ] = "outputs/reproduce",
    out: Annotated[str, typer.Option("--out", help="Folder of report.md and index.html.")] = "outputs/report",
) -> None:
    """Build a report page (report.md + self-contained index.html) from any run folders."""
    from pathlib import Path

    from wgf_cli.report import MANIFEST, build, discover

    folder = Path(runs_dir)
    if not folder.is_dir():
        _err(f"{runs_dir}: no such folder; give a run folder, a sweep folder or `make reproduce`'s")
        raise typer.Exit(2)
    if not (folder / MANIFEST).exists() and not discover(folder):
        _err(f"no run folders (with run.json) under {runs_dir}")
        raise typer.Exit(2)
    md, page, claims = build(runs_dir, out)
    failed = [c for c in claims if not c["passed"]]
    typer.echo(f"{page}\n{md}\nclaims: {len(claims) - len(failed)}/{len(claims)} pass")
    for c in failed:
        _err(f"claim failed: {c['run']}: {c['text']} ({c['key']}={c['value']}, needs {c['op']} {c['threshold']})")
    if failed:
        raise typer.Exit(1)


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

    from wgf_cli.summarize import for_display, table

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
    shown, shared = for_display(df)
    t = Table(title=f"{len(df)} runs")
    for col in shown.columns:
        t.add_column(col, overflow="fold")
    for _, row in shown.iterrows():
        t.add_row(*[("" if v is None or v != v else f"{v:.4g}" if isinstance(v, float) else str(v))
                    for v in row.tolist()])
    Console(soft_wrap=True).print(t)
    if shared and len(df) > 1:
        typer.echo(f"every run: {' '.join(shared)}")
    for k in df.attrs.get("missing", []):
        _err(f"key {k!r} is in no summary.json")


def _typed(flag: _Flag) -> tuple[Any, Any]:
    """The Typer annotation and default of a typed flag (a switch defaults to False, the rest to None)."""
    if flag.type is bool:
        return Annotated[bool, typer.Option(*flag.decls, help=flag.help)], False
    return Annotated[flag.type | None, typer.Option(*flag.decls, help=flag.help, show_default=False)], None


def _register(name: str) -> None:
    """Add subcommand ``name`` to the app: Hydra overrides, its typed flags, then the common options."""
    from wgf_cli.commands import COMMANDS

    spec = _SPECS[name]
    by_param = {f.param: f for f in spec.flags}
    shown = [by_param[p] for p in spec.shown] if spec.shown else list(spec.flags)
    common: list[tuple[str, Any, Any]] = [("device", Device, None), ("seed", Seed, None), ("multirun", Multirun, False),
                                          ("show_config", ShowConfig, False), ("quiet", Quiet, False)]
    if spec.resume:
        common.append(("resume", Resume, None))
    params = [inspect.Parameter("overrides", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                annotation=Overrides)]
    for f in shown:
        annotation, default = _typed(f)
        params.append(inspect.Parameter(f.param, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                        annotation=annotation))
    params += [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d, annotation=a)
               for p, a, d in common]

    def command(**values: Any) -> None:
        _dispatch(name, _flags(name, values), values["overrides"], values["multirun"], values["show_config"],
                  values["quiet"], values.get("resume"))

    command.__name__ = command.__qualname__ = name.replace("-", "_")
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {}
    command.__doc__ = f"{COMMANDS[name].title}\n\n{spec.examples}"  # the help: title, then examples
    app.command(name, cls=_Command, context_settings=PASS_THROUGH)(command)


#: ``wgf --help`` lists the subcommands in this order
for _name in ("renyi-mi", "meanfield", "wgan", "gdelt-build", "gdelt-train", "gdelt-forecast"):
    _register(_name)
app.command()(presets)
app.command()(report)
app.command()(summarize)
for _name in ("jko", "ot"):
    _register(_name)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
