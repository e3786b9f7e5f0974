"""Install anywhere: a wheel built from the checkout, installed into a fresh virtual
environment, gives a working `wgf` in any folder (the configs ship inside the wheel and are
found through Hydra's pkg://wgf_cli.conf search path).  The fresh environment reuses this
interpreter's installed dependencies (torch, hydra, ...) through a .pth file, so nothing is
downloaded."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                    reason="building the wheel offline needs setuptools in this environment")
def test_wheel_in_a_fresh_venv_runs_from_any_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WGF_CONF")}
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels)], check=True, cwd=tmp_path, env=env)
    wheel = next(wheels.glob("wgf_cli-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, cwd=tmp_path, env=env)
    # then the dependencies: this interpreter's (written after the install, so that pip never
    # sees, let alone replaces, the wgf-cli installed here)
    Path(site, "_reuse_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "anywhere"
    work.mkdir()
    wgf = env_dir / "bin" / "wgf"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(wgf), *args], cwd=work, env=env, capture_output=True, text=True)

    res = run("--version")
    assert res.returncode == 0 and res.stdout.startswith("wgf "), res.stderr
    where = subprocess.run([str(py), "-c", "import wgf_cli.catalog as c; print(c.__file__, c.conf_location()[1])"],
                           cwd=work, env=env, capture_output=True, text=True)
    assert str(env_dir) in where.stdout and "pkg://wgf_cli.conf" in where.stdout, where.stdout + where.stderr
    res = run("jko", "--grid", "16", "--steps", "2", "output.gif_frames=0", "--quiet", "threads=1")
    assert res.returncode == 0, res.stderr
    run_dir = Path(res.stdout.strip().splitlines()[-1])
    assert run_dir.is_relative_to(work / "outputs") and (run_dir / "summary.json").is_file()
    res = run("jko", "solver.tua=1")
    assert res.returncode == 2 and "did you mean solver.tau?" in res.stderr
