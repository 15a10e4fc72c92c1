"""TransferClassifier: architectures, parameter counts of the TruncatedTL paper, inflation invariance, truncation."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from medtl_monai.networks import (
    FAMILIES,
    StemConfig,
    TransferClassifier,
    build_backbone,
    count_parameters,
    get_family,
    inflate_kernel,
    inflate_state_dict,
    load_backbone_weights,
    truncate_backbone,
)


def _cuts(arch: str) -> list:
    """Every stage cut, plus two layer-level cuts (one inside a stage, one at a stage end)."""
    spec = get_family(arch)
    inside = spec.blocks[0] + spec.blocks[1] + spec.blocks[2] // 2
    return [None, *spec.stage_names, inside, spec.blocks[0]]


def _pretrained_like(backbone: nn.Module, seed: int = 1) -> nn.Module:
    """Give a backbone's BatchNorm layers non-trivial statistics and affine values, as trained weights have."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.num_features, generator=g) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=g) * 0.5 + 0.75)
                module.bias.copy_(torch.randn(module.num_features, generator=g) * 0.05)
    return backbone


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_center_inflation_preserves_2d_output_for_every_cut(arch):
    """A 3D network (center inflation) on an image repeated along depth equals the 2D network on the image."""
    spec = get_family(arch)
    torch.manual_seed(0)
    b2 = _pretrained_like(build_backbone(arch, 2, 3))
    # depth strides differ from in-plane ones on purpose (the pool keeps depth: DenseNet transitions halve it too)
    b3 = build_backbone(arch, 3, 3, StemConfig(depth_kernel=3, depth_stride=2, pool_depth_stride=1))
    b3.load_state_dict(inflate_state_dict(b2.state_dict(), b3.state_dict(), "center"))
    image = torch.randn(2, 3, 64, 64)
    volume = image.unsqueeze(-1).repeat(1, 1, 1, 1, 16)
    for cut in _cuts(arch):
        net2 = truncate_backbone(b2, spec, cut).eval()
        net3 = truncate_backbone(b3, spec, cut).eval()
        with torch.no_grad():
            y2, y3 = net2(image), net3(volume)
        assert y3.shape[:-1] == y2.shape, (cut, y2.shape, y3.shape)
        for d in range(y3.shape[-1]):
            err = (y3[..., d] - y2).abs().max() / y2.abs().max().clamp_min(1e-12)
            assert err <= 1e-5, f"{arch} cut={cut} depth {d}: relative error {err:.2e}"


@pytest.mark.parametrize("arch", ["resnet50", "densenet121"])
def test_center_inflation_holds_through_a_weights_file(arch, tv_weights):
    """The same invariance with the weights loaded from a torchvision file (renaming, inflation on load)."""
    path = tv_weights(arch)
    spec = get_family(arch)
    b2, b3 = build_backbone(arch, 2, 3), build_backbone(arch, 3, 3, StemConfig(3, 2, 1))
    load_backbone_weights(b2, spec, path)
    load_backbone_weights(b3, spec, path, inflation="center")
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y2 = truncate_backbone(b2, spec, spec.block_stages[1]).eval()(image)
        y3 = truncate_backbone(b3, spec, spec.block_stages[1]).eval()(image.unsqueeze(-1).repeat(1, 1, 1, 1, 8))
    assert torch.allclose(y3[..., 0], y2, atol=1e-5 * y2.abs().max().item())


def test_classifier_outputs_equal_in_2d_and_3d(tv_weights):
    """The whole TransferClassifier (head included) keeps the invariance with the default 3D stem."""
    path = tv_weights("resnet50")
    m2 = TransferClassifier("resnet50", 2, 1, 3, cut=11, weights=path).eval()
    m3 = TransferClassifier("resnet50", 3, 1, 3, cut=11, weights=path).eval()
    m3.head.load_state_dict(m2.head.state_dict())
    image = torch.randn(1, 1, 96, 96)
    with torch.no_grad():
        y2, y3 = m2(image), m3(image.unsqueeze(-1).repeat(1, 1, 1, 1, 24))
    assert torch.allclose(y3, y2, rtol=1e-5, atol=1e-5 * y2.abs().max().item())


def test_mean_inflation_sums_to_the_2d_kernel():
    w = torch.randn(8, 3, 7, 7)
    inflated = inflate_kernel(w, 5, "mean")
    assert inflated.shape == (8, 3, 7, 7, 5)
    assert torch.allclose(inflated.sum(dim=-1), w, atol=1e-6)
    center = inflate_kernel(w, 5, "center")
    assert torch.equal(center[..., 2], w) and center[..., [0, 1, 3, 4]].abs().sum() == 0


def test_mean_inflation_loads_through_the_classifier(tv_weights):
    path = tv_weights("resnet18")
    m = TransferClassifier("resnet18", 3, 3, 2, cut="layer2", weights=path, inflation="mean")
    w2 = torch.load(path)["layer1.0.conv1.weight"]
    w3 = m.backbone.layer1[0].conv1.weight
    assert w3.shape == (64, 64, 3, 3, 3)
    assert torch.allclose(w3.sum(dim=-1), w2, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, millions, tolerance",
    [({}, 23.5, 0.02), ({"cut": "layer3"}, 8.54, 0.02), ({"cut": 11}, 6.31, 0.02), ({"slim_after": "layer3"}, 12.9, 0.05)],
    ids=["full", "block-cut-layer3", "layer-cut-TTL2", "transfusion-slim"],
)
def test_resnet50_parameter_counts_match_truncatedtl_paper(kwargs, millions, tolerance):
    """Table of the TruncatedTL paper (2D ResNet-50, 2 classes). The paper prints TF-slim with three significant
    figures (12.9M); ours is 12.948M, inside that rounding, hence its wider tolerance."""
    model = TransferClassifier("resnet50", spatial_dims=2, in_channels=3, num_classes=2, **kwargs)
    assert abs(count_parameters(model) / 1e6 - millions) <= tolerance


def test_2d_resnet50_has_exactly_torchvisions_keys():
    from _tv_weights import torchvision_state_dict

    tv = torchvision_state_dict("resnet50")
    assert len(tv) == 320  # torchvision's resnet50 state dict, fc included
    ours = TransferClassifier("resnet50", 2, 3, 1000).state_dict()
    assert len(ours) == len(tv)


def test_truncated_parts_are_gone():
    model = TransferClassifier("resnet50", 2, 3, 2, cut=11)
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith("backbone.layer4") for n in names)
    assert len(model.backbone.layer3) == 4
    assert model.stage_names == ("stem", "layer1", "layer2", "layer3")
    assert model.head.fc.in_features == 1024


def test_densenet_cut_keeps_pretrained_sliced_norm(tv_weights):
    path = tv_weights("densenet121")
    spec = get_family("densenet121")
    full = TransferClassifier("densenet121", 2, 3, 2, weights=path)
    cut = 6 + 12 + 5  # five dense layers into denseblock3
    model = TransferClassifier("densenet121", 2, 3, 2, cut=cut, weights=path)
    assert model.stage_names == ("stem", "denseblock1", "transition1", "denseblock2", "transition2", "denseblock3", "final_norm")
    channels = 256 + 5 * spec.growth_rate
    assert model.head.fc.in_features == channels
    state = torch.load(path)
    assert torch.equal(model.backbone.final_norm.norm.weight, state["features.transition3.norm.weight"][:channels])
    assert torch.equal(full.backbone.final_norm.norm.running_var, state["features.norm5.running_var"])
    x = torch.randn(1, 3, 64, 64)
    assert model.eval()(x).shape == (1, 2)


def test_transfusion_slim_rebuilds_top_with_half_channels(tv_weights):
    path = tv_weights("resnet50")
    model = TransferClassifier("resnet50", 2, 3, 2, weights=path, slim_after="layer3")
    state = torch.load(path)
    assert torch.equal(model.backbone.layer3[5].conv3.weight, state["layer3.5.conv3.weight"])
    assert model.backbone.layer4[0].conv1.out_channels == 256  # 512 in the full network
    assert model.backbone.layer4[0].conv1.weight.shape != state["layer4.0.conv1.weight"].shape
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 2)


def test_input_channel_adaptation_matches_rgb_on_grey_images(tv_weights):
    path = tv_weights("resnet18")
    rgb = TransferClassifier("resnet18", 2, 3, 2, cut="layer2", weights=path).eval()
    grey = TransferClassifier("resnet18", 2, 1, 2, cut="layer2", weights=path).eval()
    six = TransferClassifier("resnet18", 2, 6, 2, cut="layer2", weights=path).eval()
    five = TransferClassifier("resnet18", 2, 5, 2, cut="layer2", weights=path)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        ref = rgb.backbone(x.repeat(1, 3, 1, 1))
        assert torch.allclose(grey.backbone(x), ref, atol=1e-5 * ref.abs().max().item())
        assert torch.allclose(six.backbone(x.repeat(1, 6, 1, 1)), ref, atol=1e-5 * ref.abs().max().item())
    w = torch.load(path)["conv1.weight"]
    assert torch.allclose(five.backbone.stem.conv.weight, torch.cat([w, w[:, :2]], dim=1) * 3 / 5)


def test_head_is_kaiming_normal_with_zero_bias():
    torch.manual_seed(0)
    model = TransferClassifier("resnet50", 2, 3, 64)
    w = model.head.fc.weight
    assert torch.count_nonzero(model.head.fc.bias) == 0
    expected_std = (2.0 / w.shape[1]) ** 0.5
    assert abs(w.std().item() / expected_std - 1) < 0.05
    with_dropout = TransferClassifier("resnet18", 2, 3, 2, dropout=0.3)
    assert isinstance(with_dropout.head.dropout, nn.Dropout) and with_dropout.head.dropout.p == 0.3


def test_3d_stem_depth_settings_are_applied():
    model = TransferClassifier("resnet18", 3, 1, 2, cut="layer1", stem_depth_kernel=5, stem_depth_stride=1, pool_depth_stride=1)
    conv, pool = model.backbone.stem.conv, model.backbone.stem.pool
    assert conv.kernel_size == (7, 7, 5) and conv.stride == (2, 2, 1)
    assert pool.stride == (2, 2, 1)
    out = model.backbone(torch.randn(1, 1, 32, 32, 8))
    assert out.shape == (1, 64, 8, 8, 8)


def test_default_3d_model_is_small(tv_weights):
    """The default bundle network (cut=10 with the default stem) keeps under 1/4 of the full inflated parameters."""
    full = TransferClassifier("resnet50", 3, 3, 2)
    cut = TransferClassifier("resnet50", 3, 3, 2, cut=10)
    assert count_parameters(cut) <= count_parameters(full) / 4
