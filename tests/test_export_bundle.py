"""ONNX export and ONNX Runtime inference: the exported graph, the bundle run on ONNX Runtime and the bundle
classifier used by the integrations all give the bundle's PyTorch probabilities (max abs difference <= 1e-4)."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

from _bundle_utils import REPO, trained_bundle
from _integration_utils import bundle_probabilities
from medtl_monai.bundle import BundleModel
from medtl_monai.export import export_bundle_onnx, export_onnx, max_abs_difference
from medtl_monai.networks import OnnxRuntimeNetwork, TransferClassifier

ort = pytest.importorskip("onnxruntime")

ATOL = 1e-4
NETS = {
    "2d-resnet50-TTL2": ({"arch": "resnet50", "spatial_dims": 2, "in_channels": 3, "cut": 11}, (1, 3, 64, 64)),
    "3d-resnet50-cut10": ({"arch": "resnet50", "spatial_dims": 3, "in_channels": 3, "cut": 10}, (1, 3, 32, 32, 16)),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each network exported once with a dynamic batch: ``{name: (model, path, shape)}``."""
    out = {}
    for name, (kwargs, shape) in NETS.items():
        torch.manual_seed(0)
        model = TransferClassifier(num_classes=2, **kwargs).eval()
        out[name] = (model, export_onnx(model, tmp_path_factory.mktemp("onnx") / f"{name}.onnx", shape), shape)
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, tiny_demo):
    return trained_bundle(tmp_path_factory, tiny_demo)


@pytest.fixture(scope="module")
def reference(bundle, tiny_demo, tmp_path_factory):
    """The bundle's own PyTorch inference on the tiny DICOM series: probabilities by case id."""
    return bundle_probabilities(bundle, tiny_demo / "dicom", tmp_path_factory.mktemp("cwd"))


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_runtime_gives_the_eager_outputs_at_any_batch_size(exported, name, batch):
    model, path, shape = exported[name]
    x = torch.randn(batch, *shape[1:], generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        assert max_abs_difference(OnnxRuntimeNetwork(path)(x), model(x)) <= ATOL


@pytest.mark.parametrize("level", ["disable", "basic", "extended", "all"])
def test_every_graph_optimization_level_and_thread_count_gives_the_same_outputs(exported, level):
    model, path, shape = exported["3d-resnet50-cut10"]
    x = torch.rand(2, *shape[1:])
    with torch.no_grad():
        ref = model(x)
    for threads in (1, 2):
        net = OnnxRuntimeNetwork(path, graph_optimization_level=level, intra_op_num_threads=threads)
        assert max_abs_difference(net(x), ref) <= ATOL


def test_onnx_runtime_network_is_a_module_that_copies_and_takes_meta_tensors(exported):
    from monai.data import MetaTensor

    model, path, shape = exported["2d-resnet50-TTL2"]
    net = OnnxRuntimeNetwork(path)
    assert isinstance(net, torch.nn.Module) and not list(net.parameters())
    x = MetaTensor(torch.rand(*shape), affine=torch.eye(3))
    out = copy.deepcopy(net).eval()(x)
    assert type(out) is torch.Tensor and out.shape == (1, 2)
    with torch.no_grad():
        assert max_abs_difference(out, model(x.as_tensor())) <= ATOL


def test_bad_arguments_are_clear_errors(tmp_path, exported):
    _, path, _ = exported["2d-resnet50-TTL2"]
    with pytest.raises(FileNotFoundError, match="export it first"):
        OnnxRuntimeNetwork(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="graph_optimization_level"):
        OnnxRuntimeNetwork(path, graph_optimization_level="max")
    with pytest.raises(ValueError, match="example_shape"):
        export_onnx(torch.nn.Identity(), tmp_path / "x.onnx", (3, 64))


def test_a_static_batch_export_rejects_another_batch_size(tmp_path):
    model = TransferClassifier("resnet18", 2, 1, 2, cut="layer1").eval()
    net = OnnxRuntimeNetwork(export_onnx(model, tmp_path / "static.onnx", (2, 1, 32, 32), dynamic_batch=False))
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 2)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        net(torch.rand(3, 1, 32, 32))


def test_export_raises_when_onnx_runtime_disagrees(tmp_path, monkeypatch):
    model = TransferClassifier("resnet18", 2, 1, 2, cut="layer1").eval()
    monkeypatch.setattr(OnnxRuntimeNetwork, "forward", lambda self, x: torch.full((x.shape[0], 2), 7.0))
    with pytest.raises(ValueError, match="differs from PyTorch"):
        export_onnx(model, tmp_path / "m.onnx", (1, 1, 32, 32))


@pytest.mark.slow
def test_export_script_then_bundle_inference_on_onnx_runtime_equals_pytorch(bundle, reference, tiny_demo, tmp_path):
    onnx_path = bundle / "models" / "model.onnx"
    onnx_path.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "export_onnx.py"), str(bundle)],  # size from the card
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert onnx_path.is_file() and "matches PyTorch" in proc.stderr
    onnx_probs = bundle_probabilities(bundle, tiny_demo / "dicom", tmp_path, extra_configs=["inference_onnx.json"],
                                      onnx_file="models/model.onnx")
    assert sorted(onnx_probs) == sorted(reference) and len(reference) == 20
    for case, probs in reference.items():
        assert np.abs(np.subtract(onnx_probs[case], probs)).max() <= ATOL, case
    assert not list(tmp_path.glob("models*")), "outputs must go into the bundle, not the current directory"


def test_onnx_inference_without_an_export_says_how_to_make_one(bundle, tiny_demo):
    from medtl_monai.bundle import run_workflow
    from medtl_monai.data import MissingDataError

    with pytest.raises(RuntimeError) as info:  # ConfigWorkflow wraps the expression's error
        run_workflow(bundle, ["inference.json", "inference_onnx.json"],
                     {"input_dir": str(tiny_demo / "dicom"), "onnx_file": "models/none.onnx"}, workflow_type="infer")
    assert isinstance(info.value.__cause__, MissingDataError)
    assert "none.onnx' does not exist: export it first: python scripts/export_onnx.py" in str(info.value.__cause__)


@pytest.mark.parametrize("model_file", ["models/model.pt", "models/model.onnx"])
def test_bundle_model_gives_the_bundle_inference_probabilities(bundle, reference, tiny_demo, model_file):
    if model_file.endswith(".onnx"):
        export_bundle_onnx(bundle, output="models/model.onnx")
    classifier = BundleModel(bundle, model_file=model_file)
    assert classifier.class_names == ["negative", "positive"]
    for case in sorted(reference)[:4]:
        result = classifier(tiny_demo / "dicom" / case)
        probs = [result["probabilities"][c] for c in classifier.class_names]
        assert np.abs(np.subtract(probs, reference[case])).max() <= ATOL, case
        assert result["label"] == classifier.class_names[int(np.argmax(probs))] and result["label_index"] == int(np.argmax(probs))
