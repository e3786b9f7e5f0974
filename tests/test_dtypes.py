"""Every engine on the CPU in float32 and float64 (the ``dtype`` fixture of conftest.py): the
result keeps the dtype it was given, and float32 agrees with float64 to a float32 tolerance
(float64 against itself: bit for bit, the same computation twice)."""

from __future__ import annotations

import torch

F64 = torch.float64


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference relative to the largest |b| (both compared in float64)."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def _agree(got: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, f32: float) -> None:
    err = _rel(got, ref)
    assert err <= (f32 if dtype == torch.float32 else 0.0), err


# ----------------------------------------------------------------------------- ot
def _grid_sinkhorn(dtype):
    from wgf_cli.flows import initial
    from wgf_cli.flows.energies import Heat
    from wgf_cli.ot.grid import Grid, GridGeometry
    from wgf_cli.ot.sinkhorn import prox_sinkhorn

    grid = Grid.regular(24, 2, dtype=dtype)
    gamma = 2 * grid.spacing[0] ** 2
    energy = Heat(grid, 0.1)
    q = initial.gaussian(grid, [0.45, 0.5], 0.1)
    sigma = 2 * 1e-3 / gamma
    return prox_sinkhorn(GridGeometry(grid, gamma), q, lambda lp: energy.prox_log(lp, sigma),
                         tol=1e-5, inner_max=5000)


def test_ot_grid_sinkhorn_in_both_dtypes(dtype):
    res, ref = _grid_sinkhorn(dtype), _grid_sinkhorn(F64)
    assert res.converged and res.rho.dtype == dtype and res.f.dtype == dtype
    _agree(res.rho, ref.rho, dtype, 1e-5)  # measured 3.3e-7


# ----------------------------------------------------------------------------- flows
def _jko_step(dtype):
    from wgf_cli.flows import initial
    from wgf_cli.flows.energies import FokkerPlanck
    from wgf_cli.flows.jko import EntropicJKO
    from wgf_cli.flows.potentials import QuadraticPotential
    from wgf_cli.ot.grid import Grid

    grid = Grid.regular(32, 2, dtype=dtype)
    energy = FokkerPlanck(grid, QuadraticPotential([0.5, 0.5], [[3.0, 0.5], [0.5, 4.0]], 2), 0.05)
    rho0 = initial.gaussian(grid, [0.35, 0.6], 0.08)
    return EntropicJKO(energy, 2e-3, grid.spacing[0] ** 2, tol=1e-5, debias=True, inner_max=5000).step(rho0)


def test_flows_jko_step_in_both_dtypes(dtype):
    step, ref = _jko_step(dtype), _jko_step(F64)
    assert step.converged and step.rho.dtype == dtype
    assert abs(float(step.rho.double().sum()) - 1.0) <= (1e-6 if dtype == torch.float32 else 1e-12)
    _agree(step.rho, ref.rho, dtype, 1e-5)  # measured 3.1e-7


# ----------------------------------------------------------------------------- meanfield
def _particles_step(dtype):
    from wgf_cli.meanfield import network as N
    from wgf_cli.meanfield.data import make_dataset
    from wgf_cli.meanfield.particles import ParticleTrainer

    ds = make_dataset("teacher", 64, 16, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)
    W, a = N.init_particles(32, 2, 1.0, torch.Generator().manual_seed(1), dtype=dtype)
    tr = ParticleTrainer(ds, "gd", 0.1)
    for _ in range(5):
        W, a, info = tr.step(W, a)
    return W, a, info


def test_meanfield_particles_step_in_both_dtypes(dtype):
    W, a, info = _particles_step(dtype)
    W_ref, a_ref, info_ref = _particles_step(F64)
    assert W.dtype == dtype and a.dtype == dtype
    _agree(W, W_ref, dtype, 1e-5)
    assert abs(info.loss - info_ref.loss) <= (1e-5 if dtype == torch.float32 else 0.0) * abs(info_ref.loss)


# ----------------------------------------------------------------------------- gan
def _gan_steps(dtype):
    from wgf_cli.gan.data import make_dataset
    from wgf_cli.gan.models import flat_parameters, mlp
    from wgf_cli.gan.trainer import GANTrainer, TrainConfig

    torch.manual_seed(0)
    G, D = mlp(1, 1, 16, 1).to(dtype), mlp(1, 1, 16, 1).to(dtype)
    cfg = TrainConfig(loss="wgan_gp", z_dim=1, batch_size=64, lr_g=1e-2, lr_c=1e-2)
    tr = GANTrainer(G, D, make_dataset("gauss2_1d", std=0.1), cfg, seed=0)
    for _ in range(3):
        tr.step()
    dtypes = {p.dtype for p in [*tr.G.parameters(), *tr.D.parameters()]}
    x = tr.sample(tr.noise(100, torch.Generator().manual_seed(1)))
    return flat_parameters(tr.G), flat_parameters(tr.D), x, dtypes  # flat: float64 copies


def test_gan_trainer_step_in_both_dtypes(dtype):
    g, d, x, dtypes = _gan_steps(dtype)
    g_ref, d_ref, x_ref, _ = _gan_steps(F64)
    assert dtypes == {dtype} and x.dtype == dtype
    _agree(g, g_ref, dtype, 1e-4)
    _agree(d, d_ref, dtype, 1e-4)
    _agree(x, x_ref, dtype, 1e-4)


# ----------------------------------------------------------------------------- info
def test_info_renyi_entropy_in_both_dtypes(dtype):
    from wgf_cli import info

    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=g, dtype=F64)
    A, A_ref = info.gram(x.to(dtype), sigma=1.5).A, info.gram(x, sigma=1.5).A
    assert A.dtype == dtype
    for alpha in (0.5, 1.01, 3.0):  # eigvalsh: float64 out whatever the input (documented)
        s, s_ref = info.entropy(A, alpha, method="eig"), info.entropy(A_ref, alpha, method="eig")
        assert s.dtype == F64
        _agree(s, s_ref, dtype, 1e-5)
    s, s_ref = info.entropy(A, 2.0, method="frobenius"), info.entropy(A_ref, 2.0, method="frobenius")
    assert s.dtype == dtype  # the differentiable alpha = 2 path keeps A's dtype
    _agree(s, s_ref, dtype, 1e-5)


# ----------------------------------------------------------------------------- forecast
def _forecast(dtype):
    from pathlib import Path

    from wgf_cli.forecast.data import SequenceData, load_build
    from wgf_cli.forecast.model import Forecaster, ModelConfig

    build = load_build(Path(__file__).resolve().parent / "fixtures" / "gdelt_train_build")
    data = SequenceData(build, "validation", 50)
    torch.manual_seed(0)
    model = Forecaster(ModelConfig(build.n_countries, build.dim, build.k, 50, d_model=16, ff=32,
                                   layers=1, dropout=0.0, mixture=4))
    with torch.no_grad():  # the heads start near zero (constant outputs): give them weights
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model = model.to(dtype).eval()
    batch = {k: v.to(dtype) if v.is_floating_point() else v for k, v in data.batch([0, 1, 2, 3]).items()}
    with torch.no_grad():
        return model.features(batch)[0], model(batch)


def test_forecast_model_forward_in_both_dtypes(dtype):
    """The network runs in the model's dtype; the heads' outputs are float32 in both (the
    model casts them with ``.float()``, the precision its losses use under bf16 autocast)."""
    (h, out), (h_ref, ref) = _forecast(dtype), _forecast(F64)
    assert h.dtype == dtype
    _agree(h, h_ref, dtype, 1e-5)
    for name in ("cell_logits", "log_mu", "log_alpha", "cloud_x", "cloud_logw"):
        got, want = getattr(out, name), getattr(ref, name)
        assert got.dtype == torch.float32, name
        err = _rel(got, want)
        assert err <= 1e-5, (name, err)
