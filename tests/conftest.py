"""Shared pytest configuration: quiet, deterministic, small thread pool, tests importable helpers."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding torchvision-format random weights for every family, written once per session."""
    from _tv_weights import write_torchvision_weights
    from medtl_monai.networks import FAMILIES

    folder = tmp_path_factory.mktemp("tv_weights")
    for arch in FAMILIES:
        write_torchvision_weights(folder, arch, seed=1)
    return folder


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo data set (NIfTI and DICOM, CT and X-ray), written once per session."""
    from medtl_monai.data.demo import make_demo_dataset

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
