"""Keller-Segel (2-D, logarithmic kernel): spreading below the critical mass, concentration
above it, the second moment against the whole-plane virial identity dM2/dt = 4D(1 - M/M_crit)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from typer.testing import CliRunner

from wgf_cli.cli import app
from wgf_cli.flows.energies import KellerSegel, LogKernel
from wgf_cli.flows.initial import gaussian
from wgf_cli.flows.jko import EntropicJKO
from wgf_cli.ot.grid import Grid


def test_log_kernel_gradient_and_origin_value():
    k = LogKernel(2.0, (0.1, 0.1))
    # the cell average of log|x| converges with the quadrature and lies between log(h/4) and log(h/2)
    fine = LogKernel(2.0, (0.1, 0.1), sub=800)
    assert_allclose(k.log_origin, fine.log_origin, atol=1e-4)
    assert math.log(0.05 / 2) < k.log_origin < math.log(0.05)
    x = torch.tensor([[0.3, -0.2], [1e-3, 2e-3]], dtype=torch.float64)
    eps = 1e-7
    fd = torch.stack([(k.radial((x + eps * e).norm(dim=-1)) - k.radial((x - eps * e).norm(dim=-1))) / (2 * eps)
                      for e in torch.eye(2, dtype=torch.float64)], dim=-1)
    assert_allclose(k.grad(x).numpy(), fd.numpy(), rtol=1e-5)
    assert float(k.grad(torch.zeros(1, 2, dtype=torch.float64)).abs().max()) == 0.0


def _second_moments(mass: float, steps: int = 15, n: int = 48, h: float = 2e-4):
    grid = Grid.regular(n, 2)
    energy = KellerSegel(grid, mass, diffusion=1.0, chi=math.pi)
    p = gaussian(grid, [0.5, 0.5], 0.06)
    flow = EntropicJKO(energy, h, min(grid.spacing) ** 2, tol=1e-9, debias=True)
    t, m2, F = [0.0], [energy.second_moment(p)], [energy.value(p)]
    for k in range(steps):
        p = flow.step(p).rho
        t.append((k + 1) * h)
        m2.append(energy.second_moment(p))
        F.append(energy.value(p))
    return energy, np.array(t), np.array(m2), np.array(F), p


@pytest.mark.parametrize(("mass", "tol"), [(6.0, 0.02), (10.0, 0.08)])
def test_second_moment_follows_the_virial_identity(mass, tol):
    energy, t, m2, F, p = _second_moments(mass)
    assert energy.critical_mass == pytest.approx(8.0)
    rate = np.polyfit(t, m2, 1)[0]
    # whole-plane closed form: +1 (M = 6) and -1 (M = 10); the box's walls are 7 std away.
    # Measured on 48^2, h = 2e-4, 15 steps: 1.02 and -0.79 (super-critical: the grid scale slows
    # the collapse); tolerances 2 % and 8 % of 4 D
    assert abs(rate - energy.virial_rate()) <= tol * 4 * energy.diffusion
    assert (m2[-1] > m2[0]) == (mass < energy.critical_mass)
    assert np.all(np.diff(F) <= 1e-9 * np.abs(F).max())  # the free energy decreases
    assert_allclose(float(p.sum()), 1.0, atol=1e-12)


def test_keller_segel_needs_a_2d_grid():
    with pytest.raises(ValueError, match="2-D"):
        KellerSegel(Grid.regular(16, 1), 6.0)
    res = CliRunner().invoke(app, ["jko", "energy=keller_segel", "grid.dim=1"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "wgf: error: energy=keller_segel is 2-D (the Newtonian kernel); got grid.dim=1"]
    res = CliRunner().invoke(app, ["jko", "energy=keller_segel", "energy.mass=-1"])
    assert res.exit_code == 2 and "energy.mass must be > 0" in res.output
