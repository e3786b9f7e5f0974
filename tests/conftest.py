
import pytest
import torch

# The engines work on small tensors (a 128^3 product at most in the suite): one intra-op
# thread is as fast, and avoids OpenMP spin-waits that slow them 10-100x on a loaded machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_hydra_state():
    """Each test starts and ends with no global Hydra instance."""
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip on machines without CUDA (CI never has one)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def jko_fails_above_tau(monkeypatch):
    """`wgf jko` runs fail with RuntimeError("boom") when solver.tau > 1.5e-3 (in-process launches)."""
    from wgf_cli.experiments import jko

    real_run = jko.run

    def flaky(cfg, run):
        if float(cfg.solver.tau) > 1.5e-3:
            raise RuntimeError("boom")
        return real_run(cfg, run)

    monkeypatch.setattr(jko, "run", flaky)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    """A CPU floating dtype: a test that takes it runs once in float32 and once in float64
    (tests/test_dtypes.py: every engine in both, compared with float64)."""
    return request.param
