"""Makes the installed copy of conf/ (wgf_cli/conf in the wheel) importable, so that Hydra
finds it through its pkg://wgf_cli.conf search path.  Not needed in a checkout."""
