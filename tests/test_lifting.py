"""Lifting 2D ImageNet networks to volumes (docs/lifting.md): inflation, 2.5D slices and ACS convolutions, for every
family and cut, with exact layer and network properties, export round trips and a bundle epoch per lifting."""

from __future__ import annotations

import copy
import functools
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _bundle_utils import TINY_CT, copy_bundle, workflow
from medtl_monai.bundle import ModelCard, card_network, read_model_card
from medtl_monai.explain import LayerCAM
from medtl_monai.export.onnx import export_onnx
from medtl_monai.networks import ACSConv3d, SliceBackbone, TransferClassifier, acs_split, count_parameters, slab_indices

pytestmark = pytest.mark.usefixtures("quiet_random_init")

#: one block-level and one layer-level cut per family
CUTS = {"resnet18": ("layer2", 3), "densenet121": ("denseblock1", 4)}
MATRIX = [(arch, lifting, cut) for arch, cuts in CUTS.items() for lifting in ("inflate", "slices", "acs") for cut in cuts]


@functools.cache
def flat_network(arch: str, cut: str | int) -> TransferClassifier:
    """The 2D network (3 channels, 2 classes) a lifted one is compared with, built once per arch and cut."""
    return TransferClassifier(arch, 2, 3, 2, cut=cut)


# ---- ACS ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel, stride, bias", [(7, 2, False), (3, 1, True), (1, 2, False)])
def test_each_acs_view_equals_the_2d_convolution_of_one_plane_on_an_input_constant_across_it(kernel, stride, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, kernel, stride, kernel // 2, bias=bias)
    acs = ACSConv3d.from_conv2d(conv)
    assert acs.weight is conv.weight and count_parameters(acs) == count_parameters(conv)
    a, c, _ = acs_split(8)
    groups = {"axial": slice(0, a), "coronal": slice(a, a + c), "sagittal": slice(a + c, 8)}
    plane = torch.randn(2, 4, 11, 13)
    with torch.no_grad():
        ref = conv(plane)
        # axial: constant along depth z, the 2D kernel over (x, y)
        axial = acs(plane[..., None].expand(-1, -1, -1, -1, 9))
        assert torch.allclose(axial[:, groups["axial"]], ref[:, groups["axial"], :, :, None].expand_as(axial[:, :a]),
                              atol=1e-6)
        # coronal: constant along x (anterior-posterior), the 2D kernel over (y, z)
        coronal = acs(plane[:, :, None].expand(-1, -1, 9, -1, -1))
        assert torch.allclose(coronal[:, groups["coronal"]], ref[:, groups["coronal"], None].expand_as(coronal[:, a:a + c]),
                              atol=1e-6)
        # sagittal: constant along y (left-right), the 2D kernel over (x, z)
        sagittal = acs(plane[:, :, :, None].expand(-1, -1, -1, 9, -1))
        part = sagittal[:, groups["sagittal"]]
        assert torch.allclose(part, ref[:, groups["sagittal"], :, None].expand_as(part), atol=1e-6)


def test_acs_split_gives_the_remainder_to_the_axial_then_the_coronal_group():
    assert [acs_split(n) for n in (64, 65, 66, 1)] == [(22, 21, 21), (22, 22, 21), (22, 22, 22), (1, 0, 0)]


def test_an_acs_network_has_exactly_the_2d_network_parameters_after_loading_imagenet_weights(tv_weights):
    path = tv_weights("resnet18")
    flat = TransferClassifier("resnet18", 2, 1, 2, cut=3, weights=path)
    acs = TransferClassifier("resnet18", 3, 1, 2, cut=3, weights=path, lifting="acs")
    assert count_parameters(acs) == count_parameters(flat)
    flat_state, acs_state = flat.backbone.state_dict(), acs.backbone.state_dict()
    assert flat_state.keys() == acs_state.keys()
    assert all(torch.equal(flat_state[k], acs_state[k]) for k in flat_state)  # values, BN statistics included
    assert not any(isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)) for m in acs.modules())


# ---- slices (2.5D) --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("aggregator", ["mean", "max", "attention"])
@pytest.mark.parametrize("in_channels, slab", [(3, 1), (1, 3)], ids=["windows-as-channels", "slab-as-rgb"])
def test_one_slice_repeated_gives_the_2d_network_output(aggregator, in_channels, slab):
    torch.manual_seed(0)
    flat = TransferClassifier("resnet18", 2, in_channels * slab, 3, cut="layer1").eval()
    lifted = TransferClassifier("resnet18", 3, in_channels, 3, cut="layer1", lifting="slices", slab=slab,
                                slice_stride=2, aggregator=aggregator, chunk_slices=3).eval()
    missing, unexpected = lifted.load_state_dict(flat.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("head.aggregate.") for k in missing)
    image = torch.randn(2, in_channels, 32, 32)
    volume = image[..., None].expand(-1, -1, -1, -1, 7)  # 4 slabs, processed in chunks of 3 images
    with torch.no_grad():
        expected = flat(image.repeat_interleave(slab, dim=1))  # a slab of one slice repeated, channel-major
        assert torch.allclose(lifted(volume), expected, atol=1e-5)


def test_chunked_training_with_checkpointing_gives_the_gradients_and_batchnorm_statistics_of_plain_chunks():
    torch.manual_seed(0)
    net = TransferClassifier("resnet18", 3, 1, 2, cut="layer1", lifting="slices", chunk_slices=4,
                             aggregator="attention").train()
    plain = copy.deepcopy(net)
    x = torch.randn(2, 1, 16, 16, 4)  # 8 images: two chunks
    net(x).sum().backward()
    images = plain.backbone.to_slabs(x)
    features = torch.cat([plain.backbone.encode(images[i:i + 4]) for i in range(0, 8, 4)])  # no checkpointing
    plain.head(features.reshape(2, 4, -1).transpose(1, 2)).sum().backward()
    for (name, a), b in zip(net.named_parameters(), plain.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name
    for (name, a), b in zip(net.named_buffers(), plain.buffers()):  # the recomputation did not update them twice
        assert torch.equal(a, b), name


def test_slab_maps_are_assembled_into_the_input_voxel_grid():
    backbone = SliceBackbone(nn.Identity(), slab=1, slice_stride=2)
    depth, s = 8, 4  # slab centres at slices 0, 2, 4, 6
    values = torch.tensor([[0.0, 1, 2, 3], [10, 11, 12, 13]])  # (case, slab)
    maps = values.reshape(-1, 1, 1, 1).expand(-1, 1, 2, 3)  # (B * S, 1, h, w), case-major
    volume = backbone.assemble_slice_maps(maps, (4, 6, depth))
    assert volume.shape == (2, 1, 4, 6, depth)
    profile = volume[:, 0, 0, 0]
    expected = torch.tensor([[0, 0.5, 1, 1.5, 2, 2.5, 3, 3], [10, 10.5, 11, 11.5, 12, 12.5, 13, 13]])
    assert torch.allclose(profile, expected) and torch.allclose(volume, profile[:, None, None, None, :].expand_as(volume))
    # a stage of a 2.5D network sees (B * S, C, h, w): what CAMs record, assembled into (B, C, x, y, z)
    net = TransferClassifier("resnet18", 3, 1, 2, cut="layer1", lifting="slices", slice_stride=2).eval()
    seen = {}
    net.get_stage("layer1").register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    with torch.no_grad():
        net(torch.randn(2, 1, 32, 32, 7))
    assert seen["out"].shape == (2 * s, 64, 8, 8)
    assert net.backbone.assemble_slice_maps(seen["out"], (32, 32, 7)).shape == (2, 64, 32, 32, 7)


@pytest.mark.parametrize("lifting", ["slices", "acs"])
def test_cams_of_the_new_liftings_are_volumes_on_the_input_grid(lifting):
    """LayerCAM of a 2.5D network assembles its per-slab maps into the volume (so a CAM NIfTI keeps the input's
    affine); an ACS network's maps are 3D as they are."""
    torch.manual_seed(0)
    net = TransferClassifier("resnet18", 3, 1, 2, cut="layer1", lifting=lifting).eval()
    result = LayerCAM(net, "layer1").compute(torch.randn(2, 1, 32, 32, 8), class_idx=1)
    assert result.cam.shape == (2, 1, 32, 32, 8)
    assert torch.isfinite(result.cam).all() and float(result.cam.min()) >= 0 and float(result.cam.max()) == 1.0
    assert float(result.cam.std(dim=-1).mean()) > 0  # varies along depth: not one slice's map repeated


# ---- every family x lifting x cut ---------------------------------------------------------------------------------

@pytest.mark.parametrize("arch, lifting, cut", MATRIX, ids=[f"{a}-{l}-{c}" for a, l, c in MATRIX])
def test_every_family_lifting_and_cut_gives_the_right_shapes_and_parameters(arch, lifting, cut):
    net = TransferClassifier(arch, 3, 3, 2, cut=cut, lifting=lifting).eval()
    flat = flat_network(arch, cut)
    assert net.stage_names == flat.stage_names and net.config["lifting"] == lifting
    x = torch.randn(1, 3, 32, 32, 8)
    with torch.no_grad():
        features, out = net.forward_features(x), net(x)
    assert out.shape == (1, 2) and torch.equal(out, net.head(features))
    channels = net.head.fc.in_features
    flat_state, state = flat.state_dict(), net.state_dict()
    assert state.keys() == flat_state.keys()  # same names: stages, cuts, freezing and CAM layers mean the same
    if lifting == "slices":
        assert features.shape == (1, channels, 8)  # one feature vector per slice
        assert count_parameters(net) == count_parameters(flat)
    elif lifting == "acs":
        assert features.dim() == 5 and features.shape[:2] == (1, channels)
        assert count_parameters(net) == count_parameters(flat)
    else:  # each 2D kernel inflated along depth
        assert features.dim() == 5 and features.shape[:2] == (1, channels)
        assert all(state[k].shape[:4] == flat_state[k].shape for k in state if flat_state[k].dim() == 4)
        assert count_parameters(net) > count_parameters(flat)
    smallest = net.min_input_size()
    assert net.check_input_size(list(smallest)) == smallest
    with torch.no_grad():
        assert net(torch.randn(1, 3, *smallest)).shape == (1, 2)


def test_lifting_options_are_checked_with_messages_that_name_them():
    cases = [({"spatial_dims": 2, "lifting": "acs"}, "nothing to lift"),
             ({"lifting": "voxels"}, "choose one of"),
             ({"lifting": "inflate", "slab": 3}, "only apply to lifting='slices'"),
             ({"lifting": "acs", "aggregator": "max"}, "only apply to lifting='slices'"),
             ({"lifting": "slices", "slab": 2}, "must be odd"),
             ({"lifting": "slices", "aggregator": "sum"}, "choose one of"),
             ({"lifting": "acs", "stem_depth_stride": 1}, "only apply to lifting='inflate'")]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            TransferClassifier("resnet18", **{"spatial_dims": 3, **kwargs}, in_channels=1, cut="stem")
    assert TransferClassifier("resnet18", 2, 3, 2, cut="stem", lifting="inflate").config["lifting"] is None
    assert TransferClassifier("resnet18", 3, 1, 2, cut="stem").config["lifting"] == "inflate"


# ---- export and the model card ------------------------------------------------------------------------------------

LIFTED = {"slices": {"lifting": "slices", "slab": 3, "slice_stride": 2, "aggregator": "attention", "chunk_slices": 5},
          "acs": {"lifting": "acs"}}


@pytest.mark.parametrize("name", list(LIFTED))
def test_torchscript_onnx_and_model_card_round_trips(name, tmp_path):
    torch.manual_seed(0)
    net = TransferClassifier("resnet18", 3, 1, 2, cut="layer1", **LIFTED[name]).eval()
    x = torch.randn(2, 1, 32, 32, 9)
    torch.jit.script(net).save(str(tmp_path / "model.ts"))
    loaded = torch.jit.load(str(tmp_path / "model.ts"))
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-5)
    pytest.importorskip("onnxruntime")
    export_onnx(net, tmp_path / "model.onnx", tuple(x.shape), verify=True)  # batch 2 and 3 against eager, 1e-4
    card = ModelCard(json.loads(json.dumps(net.config)), {}, ["a", "b"])  # as saved beside model.pt
    rebuilt = card_network(card).eval()
    assert rebuilt.config == net.config
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))


# ---- a bundle epoch per lifting -----------------------------------------------------------------------------------

BUNDLE_LIFTINGS = {"inflate": {}, "acs": {},
                   "slices": {"network_def#aggregator": "attention", "network_def#slice_stride": 2,
                              "network_def#chunk_slices": 8}}


@pytest.mark.parametrize("lifting", list(BUNDLE_LIFTINGS))
def test_the_bundle_trains_an_epoch_with_each_lifting_and_serves_it_from_the_card(lifting, tiny_demo, tmp_path):
    bundle = copy_bundle("bimcv_truncated", tmp_path)
    workflow(bundle, ["train.json"], "train", dataset_dir=str(tiny_demo), max_epochs=1, arch="resnet18", cut="layer1",
             limit_cases=8, **TINY_CT, **{"network_def#lifting": lifting, **BUNDLE_LIFTINGS[lifting]})
    card = read_model_card(bundle / "models")
    assert card.network["lifting"] == lifting
    if lifting == "slices":
        assert [card.network[k] for k in ("aggregator", "slice_stride", "chunk_slices")] == ["attention", 2, 8]
    net = card_network(card)
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True), strict=True)
    image = torch.rand(1, 3, 32, 32, 16)
    with torch.no_grad():
        probabilities = F.softmax(net.eval()(image), dim=1)
    assert probabilities.shape == (1, 2) and torch.isfinite(probabilities).all()


def test_the_cut_search_refuses_a_2d5_network_with_a_clear_error():
    from medtl_monai.experiments.cut_search import truncated_copy

    with pytest.raises(ValueError, match="lifting='slices'"):
        truncated_copy(TransferClassifier("resnet18", 3, 1, 2, lifting="slices"), "layer1")
    acs = truncated_copy(TransferClassifier("resnet18", 3, 1, 2, lifting="acs"), "layer1")
    assert acs(torch.randn(1, 1, 16, 16, 8)).shape == (1, 2)


@pytest.mark.parametrize("slab, stride", [(1, 1), (3, 2)])
def test_chunked_inference_builds_each_chunks_slabs_and_predicts_what_the_whole_stack_does(slab, stride):
    """Chunked inference never builds the whole slab stack (a copy of the volume) yet gives the same outputs."""
    torch.manual_seed(0)
    whole = TransferClassifier("resnet18", 3, 2, 2, cut="layer1", lifting="slices", slab=slab, slice_stride=stride).eval()
    chunked = TransferClassifier("resnet18", 3, 2, 2, cut="layer1", lifting="slices", slab=slab, slice_stride=stride,
                                 chunk_slices=3).eval()
    chunked.load_state_dict(whole.state_dict())
    x = torch.randn(2, 2, 24, 24, 11)
    index = slab_indices(11, slab, stride, x.device)
    assert torch.equal(whole.backbone._slab_images(x, index, 1, 6), whole.backbone.to_slabs(x)[1:6])
    with torch.no_grad():
        torch.testing.assert_close(chunked(x), whole(x), rtol=0, atol=1e-5)
