"""ONNX export and ONNX Runtime inference: the exported graph, the bundle run on ONNX Runtime and the bundle
classifier used by the integrations all give the bundle's PyTorch probabilities (max abs difference <= 1e-4); the
export, the bundle classifier and the error report all use the run asked for."""

from __future__ import annotations

import copy
import csv
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from _bundle_utils import REPO, copy_trained, the_run, trained_bundle
from _integration_utils import bundle_probabilities
from medtl_monai.bundle import BundleModel, publish_run
from medtl_monai.data import MissingDataError, load_split
from medtl_monai.explain import bundle_error_report
from medtl_monai.export import export_bundle_onnx, export_onnx, max_abs_difference
from medtl_monai.networks import OnnxRuntimeNetwork, TransferClassifier, read_state_dict

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
    onnx_path = the_run(bundle) / "models" / "model.onnx"  # the published run's, beside its model.pt
    onnx_path.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "export_onnx.py"), str(bundle)],  # size from the card
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert onnx_path.is_file() and "matches PyTorch" in proc.stderr and proc.stdout.strip() == f"wrote {onnx_path}"
    assert not (bundle / "models" / "model.onnx").exists()
    onnx_probs = bundle_probabilities(bundle, tiny_demo / "dicom", tmp_path, extra_configs=["inference_onnx.json"])
    assert sorted(onnx_probs) == sorted(reference) and len(reference) == 20
    for case, probs in reference.items():
        assert np.abs(np.subtract(onnx_probs[case], probs)).max() <= ATOL, case
    assert not list(tmp_path.glob("models*")), "outputs must go into the bundle, not the current directory"


def test_onnx_inference_without_an_export_says_how_to_make_one(bundle, tiny_demo):
    from medtl_monai.bundle import run_workflow

    with pytest.raises(RuntimeError) as info:  # ConfigWorkflow wraps the expression's error
        run_workflow(bundle, ["inference.json", "inference_onnx.json"],
                     {"input_dir": str(tiny_demo / "dicom"), "onnx_file": "none.onnx"}, workflow_type="infer")
    assert isinstance(info.value.__cause__, MissingDataError)
    message = str(info.value.__cause__)
    assert f"{the_run(bundle) / 'models' / 'none.onnx'}' does not exist: export it first: python scripts/export_onnx.py" in message
    assert f"export_onnx.py {bundle} --run {the_run(bundle)}" in message


@pytest.mark.parametrize("model_file", ["models/model.pt", "run's model.onnx"])
def test_bundle_model_gives_the_bundle_inference_probabilities(bundle, reference, tiny_demo, model_file):
    if model_file.endswith(".onnx"):
        model_file = str(export_bundle_onnx(bundle))
        assert model_file == str(the_run(bundle) / "models" / "model.onnx")
    classifier = BundleModel(bundle, model_file=model_file)
    assert classifier.class_names == ["negative", "positive"]
    for case in sorted(reference)[:4]:
        result = classifier(tiny_demo / "dicom" / case)
        probs = [result["probabilities"][c] for c in classifier.class_names]
        assert np.abs(np.subtract(probs, reference[case])).max() <= ATOL, case
        assert result["label"] == classifier.class_names[int(np.argmax(probs))] and result["label_index"] == int(np.argmax(probs))


def test_export_classifier_and_error_report_use_the_run_asked_for(bundle, tiny_demo, tmp_path, caplog):
    """Two runs in one bundle, ``first`` published and ``second`` with another head: ``run="second"`` exports,
    serves and explains the second run's model into the second run's folder; the default is the published run."""
    copied = copy_trained(bundle, tmp_path)
    runs = {name: copied / "runs" / name for name in ("first", "second")}
    for folder in runs.values():
        shutil.copytree(the_run(bundle), folder, ignore=shutil.ignore_patterns("checkpoint_*.pt", "model_final.pt", "*.onnx", "eval"))
    weights = read_state_dict(runs["second"] / "models" / "model.pt")
    weights["head.fc.bias"] = weights["head.fc.bias"] + torch.tensor([3.0, -3.0])
    torch.save(weights, runs["second"] / "models" / "model.pt")
    publish_run(runs["first"], copied)

    default, second = BundleModel(copied), BundleModel(copied, run="second")
    assert (default.run_dir, second.run_dir) == (runs["first"], runs["second"])
    assert second.model_file == runs["second"] / "models" / "model.pt"
    assert torch.equal(second.network.state_dict()["head.fc.bias"], weights["head.fc.bias"])
    assert BundleModel(copied, overrides={"run_name": "second"}).run_dir == runs["second"]  # as on monai.bundle run

    onnx_path = export_bundle_onnx(copied, run="second")
    assert onnx_path == runs["second"] / "models" / "model.onnx" and not (runs["first"] / "models" / "model.onnx").exists()
    x = torch.rand(default.input_shape(2), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        onnx_out, first_out = OnnxRuntimeNetwork(onnx_path)(x), default.network(x)
        assert max_abs_difference(onnx_out, second.network(x)) <= ATOL
    assert max_abs_difference(onnx_out, first_out) > 1.0

    items = load_split(tiny_demo / "datalist.json", "test")
    (runs["second"] / "eval").mkdir()
    with open(runs["second"] / "eval" / "predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", "prob_negative", "prob_positive", "prediction"])
        writer.writerows([item["id"], ("negative", "positive")[item["label"]], 0.3, 0.7, "positive"] for item in items)
    with pytest.raises(MissingDataError, match=rf"{runs['first'] / 'eval' / 'predictions.csv'}.*--run_name first"):
        bundle_error_report(copied, n_correct=0)  # the published run has no evaluation
    with caplog.at_level(logging.INFO, logger="medtl_monai.bundle"):
        html = bundle_error_report(copied, run="second", n_correct=0, max_cases=1, cam_layers=["layer3"])
    assert html == runs["second"] / "eval" / "report" / "report.html" and "run second" in html.read_text()
    assert f".pt network from {runs['second'] / 'models' / 'model.pt'}" in caplog.text
