"""Class activation maps (LayerCAM, Grad-CAM) on TransferClassifiers, 2D and 3D, and the CAM files they write."""

from __future__ import annotations

import copy
import csv
import os
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn as nn
from monai.transforms import Compose

from _bundle_utils import copy_bundle, save_untrained_model, workflow
from medtl_monai.data import load_split
from medtl_monai.explain import (
    CAMWriter,
    GradCAM,
    LayerCAM,
    fuse_maps,
    make_cam,
    nifti_affine,
    resolve_layer,
)
from medtl_monai.io import MedicalImageReader
from medtl_monai.networks import TransferClassifier, inflate_state_dict
from medtl_monai.transforms import ct_preprocessing, xray_preprocessing


pytestmark = pytest.mark.usefixtures("quiet_random_init")


def _net(arch: str = "resnet18", dims: int = 2, cut: str | int = "layer2", in_channels: int = 3) -> TransferClassifier:
    torch.manual_seed(0)
    return TransferClassifier(arch, dims, in_channels, 2, cut=cut).eval()


def _input(dims: int, batch: int = 2, channels: int = 3) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(batch, channels, *((32, 32) if dims == 2 else (32, 32, 16)))


# --- layer names -------------------------------------------------------------------------------------------------


def test_stage_names_and_dotted_paths_name_the_same_modules():
    net = _net()
    assert resolve_layer(net, "layer1") == ("backbone.layer1", net.get_stage("layer1"))
    assert resolve_layer(net, "backbone.layer1")[1] is net.get_stage("layer1")
    assert resolve_layer(net, "layer2.1")[1] is net.get_stage("layer2")[1]
    assert resolve_layer(net, "stem.norm")[0] == "backbone.stem.norm"
    assert resolve_layer(net, "head.fc")[0] == "head.fc"
    with pytest.raises(ValueError, match="'stem', 'layer1', 'layer2'"):
        resolve_layer(net, "layer4")
    assert LayerCAM(net).target_layers == ["backbone.layer2"]  # default: the last stage of the (cut) model


# --- maps: shape, range, formulas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("arch,cut,layers,dims,method", [
    ("resnet18", "layer2", ["layer1", "layer2"], 2, "layercam"),
    ("resnet18", "layer2", ["layer1", "layer2"], 3, "gradcam"),
    ("densenet121", "denseblock1", ["stem", "denseblock1"], 2, "gradcam"),
    ("densenet121", "denseblock1", ["stem", "denseblock1"], 3, "layercam"),
])
def test_maps_have_the_input_size_and_lie_in_0_1(arch, cut, layers, dims, method):
    net, x = _net(arch, dims, cut), _input(dims)
    result = make_cam(method, net, layers).compute(x)
    assert result.cam.shape == (2, 1, *x.shape[2:])
    assert torch.isfinite(result.cam).all() and result.cam.min() >= 0 and result.cam.max() <= 1
    assert list(result.layer_cams) == [f"backbone.{name}" for name in layers]
    assert torch.equal(result.class_idx, result.logits.argmax(1))


def test_gradcam_equals_monai_gradcam_up_to_its_inverted_normalisation():
    from monai.visualize import GradCAM as MonaiGradCAM

    net, x = _net(), _input(2)
    ours = GradCAM(net, "layer2")(x, class_idx=1)
    theirs = MonaiGradCAM(copy.deepcopy(net), target_layers="backbone.layer2")(x, class_idx=1)
    assert torch.allclose(ours, 1 - theirs, atol=1e-5)  # MONAI maps max -> 0 and min -> 1


def test_layercam_is_relu_of_positive_gradient_times_activation():
    net, x = _net(), _input(2)
    features = net.backbone.layer1(net.backbone.stem(x)).detach().requires_grad_(True)
    score = net.head(net.backbone.layer2(features))[:, 1].sum()
    (grad,) = torch.autograd.grad(score, features)
    raw = torch.relu((torch.relu(grad) * features).sum(1, keepdim=True)).detach()
    expected = torch.nn.functional.interpolate(raw, size=x.shape[2:], mode="bilinear", align_corners=False)
    flat = expected.flatten(1)
    expected = ((flat - flat.min(1, keepdim=True).values) / (flat.max(1, keepdim=True).values - flat.min(1, keepdim=True).values)).reshape(expected.shape)
    assert torch.allclose(LayerCAM(net, "layer1")(x, class_idx=1), expected, atol=1e-5)


@pytest.mark.parametrize("layer", ["stem.norm", "layer1.0.bn1"])
def test_monai_gradcam_fails_where_an_in_place_relu_follows_and_ours_is_exact(layer):
    """MONAI's module backward hooks break when the next operation is an in-place ReLU; tensor hooks on the stage
    output do not, and give the maps of the same network with every ReLU made out-of-place."""
    from monai.visualize import GradCAM as MonaiGradCAM

    net, x = _net(), _input(2)
    with pytest.raises(RuntimeError, match="modified inplace"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MonaiGradCAM(copy.deepcopy(net), target_layers=f"backbone.{layer}")(x)
    reference = copy.deepcopy(net)
    for module in reference.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    for cls in (LayerCAM, GradCAM):
        assert torch.allclose(cls(net, layer)(x, class_idx=1), cls(reference, layer)(x, class_idx=1), atol=1e-6)


def test_the_model_is_left_as_it_was():
    net = _net().train()
    net.backbone.stem.requires_grad_(False)  # frozen stages are fine too
    inplace = [m.inplace for m in net.modules() if isinstance(m, nn.ReLU)]
    LayerCAM(net, ["stem", "layer1", "layer2"])(_input(2))
    assert net.training
    assert all(p.grad is None for p in net.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in net.modules())
    assert [m.inplace for m in net.modules() if isinstance(m, nn.ReLU)] == inplace
    assert not any(p.requires_grad for p in net.backbone.stem.parameters())


def test_class_idx_chooses_the_explained_class_per_case():
    net, x = _net(), _input(2)
    cam = LayerCAM(net, "layer2")
    assert cam.compute(x, class_idx=1).class_idx.tolist() == [1, 1]
    per_case = cam.compute(x, class_idx=[0, 1])
    assert per_case.class_idx.tolist() == [0, 1]
    assert torch.allclose(per_case.cam[1], cam(x, class_idx=1)[1], atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        cam(x, class_idx=2)
    with pytest.raises(ValueError, match="3 entries"):
        cam(x, class_idx=[0, 1, 1])


def test_fused_map_is_the_renormalised_max_or_mean_of_the_layer_maps():
    net, x = _net(), _input(2)
    for fusion in ("max", "mean"):
        result = LayerCAM(net, ["stem", "layer1", "layer2"], fusion=fusion).compute(x)
        assert torch.allclose(result.cam, fuse_maps(list(result.layer_cams.values()), fusion))
        assert torch.allclose(result.cam.flatten(1).amax(1), torch.ones(2))
    with pytest.raises(ValueError, match="fusion"):
        LayerCAM(net, fusion="median")
    with pytest.raises(ValueError, match="CAM method"):
        make_cam("occlusion", net)


# --- localisation on a trained network --------------------------------------------------------------------------


def _blob_images(n: int, shape: tuple[int, ...], gen: torch.Generator, noise: float = 0.02) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise; odd cases (class 1) add a bright Gaussian blob centred in the low-index quadrant / octant."""
    x = noise * torch.randn(n, 1, *shape, generator=gen)
    y = torch.arange(n) % 2
    grids = torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in shape], indexing="ij")
    for i in range(1, n, 2):
        centre = [s / 4 - 0.5 + float(torch.randint(-1, 2, (1,), generator=gen)) for s in shape]
        x[i, 0] += torch.exp(-0.5 * sum(((g - c) / (s / 16)) ** 2 for g, c, s in zip(grids, centre, shape)))
    return x, y


def _mass_in_low_region(cam: torch.Tensor) -> torch.Tensor:
    region = (slice(None), 0, *[slice(0, s // 2) for s in cam.shape[2:]])
    return cam[region].flatten(1).sum(1) / cam[:, 0].flatten(1).sum(1)


@pytest.fixture(scope="module")
def blob_net() -> TransferClassifier:
    """A 2D ResNet-18 cut after layer1, trained for a few steps to tell 64x64 noise from noise with a blob in the
    top-left quadrant. BatchNorm stays in eval mode, so a dozen steps give a network whose eval behaviour is the one
    trained."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = TransferClassifier("resnet18", 2, 1, 2, cut="layer1").eval()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(14):
        x, y = _blob_images(8, (64, 64), gen)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y = _blob_images(8, (64, 64), gen)
    with torch.no_grad():
        assert (net(x).argmax(1) == y).all(), "the tiny network did not learn the task"
    return net


@pytest.mark.parametrize("cls,layers", [(LayerCAM, "stem"), (LayerCAM, ["stem", "layer1"]), (GradCAM, "layer1")])
def test_2d_cam_mass_lies_where_the_class_signal_is(blob_net, cls, layers):
    x, y = _blob_images(8, (64, 64), torch.Generator().manual_seed(5))
    mass = _mass_in_low_region(cls(blob_net, layers)(x[y == 1], class_idx=1))
    assert (mass >= 0.7).all(), mass  # a quarter of the image holds the blob; chance would be 0.25


@pytest.mark.parametrize("cls", [LayerCAM, GradCAM])
def test_3d_cam_of_the_inflated_network_lies_in_the_blob_octant(blob_net, cls):
    """The trained 2D network centre-inflated to 3D (depth stride 2 overall in the stem, so the CAM keeps depth
    detail), on 64x64x32 volumes with the blob in the low octant."""
    net3d = TransferClassifier("resnet18", 3, 1, 2, cut="layer1", stem_depth_stride=1, pool_depth_stride=2)
    net3d.load_state_dict(inflate_state_dict(blob_net.state_dict(), net3d.state_dict()))
    x, y = _blob_images(4, (64, 64, 32), torch.Generator().manual_seed(6))
    mass = _mass_in_low_region(cls(net3d.eval(), "stem")(x[y == 1], class_idx=1))
    assert (mass >= 0.7).all(), mass  # an eighth of the volume holds the blob


# --- files -------------------------------------------------------------------------------------------------------


def test_cam_nifti_has_the_input_affine_and_shape_2d_and_3d(tiny_demo, tmp_path):
    reader = MedicalImageReader()
    ct_item = load_split(tiny_demo / "datalist.json", "test")[0]
    ct = Compose(ct_preprocessing("image", spatial_size=(32, 32, 16), load=True, reader=reader))(ct_item)["image"]
    cr_path = next((tiny_demo / "dicom").glob("*/CR.dcm"))
    cr = Compose(xray_preprocessing("image", size=64, load=True, reader=reader))({"image": str(cr_path)})["image"]
    for image, dims, case_id in ((ct, 3, ct_item["id"]), (cr, 2, "some/CR.dcm")):
        net = _net(dims=dims)
        writer = CAMWriter(LayerCAM(net, ["layer1", "layer2"]), tmp_path, class_names=["negative", "positive"])
        result = writer.cam.compute(image.as_tensor()[None])
        row = writer.write_case(case_id, image, result.cam[0, 0], int(result.class_idx[0]), torch.tensor([0.4, 0.6]))
        saved = nib.load(tmp_path / row["nifti"])
        assert saved.shape == tuple(image.shape[1:])
        assert np.allclose(saved.affine, nifti_affine(image), atol=1e-4)
        if dims == 3:
            assert np.allclose(saved.affine, image.affine.numpy(), atol=1e-4)
        else:  # the 2D (3x3) affine, embedded in 4x4
            assert np.allclose(saved.affine[:2, [0, 1, 3]], image.affine.numpy()[:2], atol=1e-4)
        assert (tmp_path / row["png"]).stat().st_size > 2000
    assert row["nifti"] == "some_CR.dcm_cam.nii.gz"


def test_explain_config_writes_cams_of_a_datalist_split(tiny_demo, tmp_path, monkeypatch):
    """The explain command of the docs (train + evaluate + explain configs), run in-process from another folder."""
    bundle = copy_bundle("bimcv_truncated", tmp_path)
    save_untrained_model(bundle, ["train.json"], image_size=[32, 32, 16])
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    workflow(bundle, ["train.json", "evaluate.json", "explain.json"], dataset_dir=str(tiny_demo), limit_cases=2,
             progress_bar=False)
    cam_dir = bundle / "eval" / "cam"
    with open(cam_dir / "cams.csv") as f:
        rows = list(csv.DictReader(f))
    items = load_split(tiny_demo / "datalist.json", "test", limit=2)
    assert [r["id"] for r in rows] == [item["id"] for item in items]
    preprocess = Compose(ct_preprocessing("image", spatial_size=(32, 32, 16), load=True, reader=MedicalImageReader()))
    for row, item in zip(rows, items):
        image = preprocess(item)["image"]
        saved = nib.load(cam_dir / row["nifti"])
        assert saved.shape == (32, 32, 16) and np.allclose(saved.affine, image.affine.numpy(), atol=1e-4)
        assert (cam_dir / row["png"]).is_file()
    assert not list(cwd.iterdir()), "explain wrote into the current directory"


def test_explain_config_on_a_folder_of_xray_dicoms(tiny_demo, tmp_path):
    """The X-ray model explained on a folder (``--input_dir``): its card says 2D at 64 pixels, so the folder is
    searched for DICOM files and no size needs repeating."""
    bundle = copy_bundle("bimcv_truncated", tmp_path)
    save_untrained_model(bundle, ["train.json", "xray.json"], image_size=64)
    folder = tmp_path / "incoming"
    for case in sorted((tiny_demo / "dicom").iterdir())[:2]:
        (folder / case.name).mkdir(parents=True)
        os.symlink(case / "CR.dcm", folder / case.name / "CR.dcm")
    workflow(bundle, ["train.json", "xray.json", "evaluate.json", "explain.json"], input_dir=str(folder),
             progress_bar=False, cam_output_dir=str(tmp_path / "cams"))
    names = sorted(p.name for p in (tmp_path / "cams").iterdir())
    cases = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["cams.csv", *[f"{c}_CR.dcm_{kind}" for c in cases
                                          for kind in ("cam.nii.gz", "cam.png", "layers.png")]])
    assert nib.load(tmp_path / "cams" / f"{cases[0]}_CR.dcm_cam.nii.gz").shape == (64, 64)
