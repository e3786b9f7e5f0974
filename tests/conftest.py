
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
