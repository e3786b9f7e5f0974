"""Errors shared by the layers."""

from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """Bad input found before any work: the message is one line naming the key and what is
    allowed.  The CLI prints it and exits with code 2."""


class NothingToDo(Exception):
    """A request that is valid but has nothing to run (e.g. resuming a completed run of a
    subcommand without checkpoints).  The CLI prints the message and exits with code 0."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run or sweep: carries the folder to resume (``wgf <cmd> --resume FOLDER``)."""

    def __init__(self, folder: Path, command: str, multirun: bool = False) -> None:
        super().__init__(str(folder))
        self.folder, self.command, self.multirun = Path(folder), command, multirun
