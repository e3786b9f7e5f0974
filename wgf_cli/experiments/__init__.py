"""Experiments: `def validate(cfg)` and `def run(cfg, run) -> dict` per subcommand."""
