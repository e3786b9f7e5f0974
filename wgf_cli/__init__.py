"""wgf: a command-line experiment runner for Wasserstein gradient flows and their neighbours."""

__version__ = "0.2.0"
