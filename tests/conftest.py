"""Shared pytest configuration: quiet, deterministic, small thread pool, tests importable helpers."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tv_weights(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tv_weights(arch)``: the path of torchvision-format random weights of ``arch`` (official file name), written
    the first time an architecture is asked for in the session (all eight families would be ~0.8 GB)."""
    from _tv_weights import write_torchvision_weights
    from medtl_monai.networks import get_family

    folder = tmp_path_factory.mktemp("tv_weights")

    def path(arch: str) -> Path:
        target = folder / get_family(arch).weights_file
        if not target.is_file():
            write_torchvision_weights(folder, arch, seed=1)
        return target

    return path


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo data set (NIfTI and DICOM, CT and X-ray), written once per session."""
    from medtl_monai.synthetic.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("tiny_demo") / "demo"
    make_demo_dataset(root, n_cases=20, seed=3, ct_shape=(12, 40, 40), xray_size=64)
    return root


@pytest.fixture
def quiet_random_init():
    """Silence the 'random initialisation' warning for tests whose networks start from random weights on purpose."""
    logger = logging.getLogger("medtl_monai.networks")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """When integration tests are selected, start building their environments in the background right away."""
    kinds = {kind for item in items if item.get_closest_marker("integration")
             for kind, module in (("deploy", "test_deploy_app"), ("label", "test_monailabel_app"),
                                  ("tracking", "test_tracking")) if module in item.nodeid}
    if kinds and not config.option.collectonly:
        from _integration_utils import start_integration_builds

        start_integration_builds(kinds)
