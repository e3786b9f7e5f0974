"""Errors shared by the layers."""


class ConfigError(ValueError):
    """Bad input found before any work: the message is one line naming the key and what is
    allowed.  The CLI prints it and exits with code 2."""
