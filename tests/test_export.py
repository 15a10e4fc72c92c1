"""TorchScript and ONNX export of truncated 2D and inflated 3D models give the eager outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtl_monai.networks import TransferClassifier

CASES = [
    ({"arch": "resnet50", "spatial_dims": 2, "in_channels": 3, "cut": 11}, (2, 3, 64, 64)),
    ({"arch": "resnet18", "spatial_dims": 3, "in_channels": 1, "cut": "layer3"}, (1, 1, 48, 48, 16)),
    ({"arch": "densenet121", "spatial_dims": 2, "in_channels": 1, "cut": "denseblock2"}, (1, 1, 64, 64)),
    ({"arch": "resnet50", "spatial_dims": 3, "in_channels": 3, "cut": 10}, (1, 3, 48, 48, 16)),
]
IDS = ["resnet50-2d-TTL2", "resnet18-3d-layer3", "densenet121-2d", "resnet50-3d-default"]


@pytest.mark.parametrize("kwargs, shape", CASES, ids=IDS)
def test_torchscript_round_trip(kwargs, shape, tmp_path):
    torch.manual_seed(0)
    model = TransferClassifier(num_classes=3, **kwargs).eval()
    x = torch.randn(*shape)
    scripted = torch.jit.script(model)
    scripted.save(str(tmp_path / "model.ts"))
    loaded = torch.jit.load(str(tmp_path / "model.ts"))
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)


@pytest.mark.parametrize("kwargs, shape", CASES, ids=IDS)
def test_onnx_round_trip(kwargs, shape, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = TransferClassifier(num_classes=3, **kwargs).eval()
    x = torch.randn(*shape)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["image"], output_names=["pred"], dynamo=False, opset_version=17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(out - ref).max() <= 1e-4
