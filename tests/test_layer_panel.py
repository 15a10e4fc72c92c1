"""The per-layer CAM panel (SWFT-style LayerCAM of every backbone stage, side by side): one PNG per case, one panel
per stage the (possibly truncated) network has, and the right picture size."""

from __future__ import annotations

import io

import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor, list_data_collate
from PIL import Image

from medtl_monai.explain import LayerCAM, LayerPanelWriter, layer_panel_figure, stage_label
from medtl_monai.explain.overlay import figure_png
from medtl_monai.networks import TransferClassifier

DPI = 100  # the figures' resolution: a panel of 2.2 inches is 220 pixels


@pytest.fixture(scope="module")
def net2d():
    torch.manual_seed(0)
    return TransferClassifier("resnet18", 2, 3, 2).eval()


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as picture:
        return picture.size  # (width, height)


def test_the_2d_panel_shows_the_image_and_each_stage_of_the_full_network(net2d, quiet_random_init):
    assert net2d.stage_names == ("stem", "layer1", "layer2", "layer3", "layer4")
    result = LayerCAM(net2d, list(net2d.stage_names)).compute(torch.rand(1, 3, 32, 32))
    maps = {stage_label(path): cam[0] for path, cam in result.layer_cams.items()}
    assert list(maps) == ["stem", "layer1", "layer2", "layer3", "layer4"]
    fig = layer_panel_figure(torch.rand(3, 32, 32), maps)
    assert [ax.get_title() for ax in fig.axes] == ["image", "stem", "layer1", "layer2", "layer3", "layer4"]
    assert png_size(figure_png(fig)) == (6 * 220, 220)


def test_a_truncated_3d_network_gets_one_column_per_stage_it_has_and_a_row_per_plane(quiet_random_init):
    net = TransferClassifier("resnet18", 3, 1, 2, cut="layer2", stem_depth_stride=1).eval()
    assert net.stage_names == ("stem", "layer1", "layer2")
    result = LayerCAM(net, list(net.stage_names)).compute(torch.rand(1, 1, 16, 16, 8))
    maps = {stage_label(path): cam[0, 0] for path, cam in result.layer_cams.items()}
    fig = layer_panel_figure(torch.rand(1, 16, 16, 8), maps, affine=torch.diag(torch.tensor([1.0, 1.0, 2.0, 1.0])))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:4] == ["image (axial)", "stem", "layer1", "layer2"] and len(titles) == 3 * 4
    assert [titles[4], titles[8]] == ["image (coronal)", "image (sagittal)"]
    assert tuple(round(v) for v in fig.get_size_inches() * fig.dpi) == (4 * 220, 3 * 220)  # the PNG size


def test_a_map_of_the_wrong_size_or_no_map_is_an_error():
    with pytest.raises(ValueError, match="'layer1' has shape"):
        layer_panel_figure(torch.rand(3, 32, 32), {"layer1": torch.rand(16, 16)})
    with pytest.raises(ValueError, match="no layer"):
        layer_panel_figure(torch.rand(3, 32, 32), {})


def test_the_writer_saves_one_panel_per_case_next_to_the_cams(tmp_path, quiet_random_init):
    net = TransferClassifier("resnet18", 2, 3, 2, cut="layer1").eval()
    writer = LayerPanelWriter(LayerCAM(net, list(net.stage_names)), tmp_path / "cam", class_idx=1)
    engine = Engine(lambda engine, batch: None)
    writer.attach(engine)
    cases = [{"image": MetaTensor(torch.rand(3, 32, 32)), "id": case} for case in ("sub-1/a", "sub-2")]
    engine.run([list_data_collate(cases)], max_epochs=1)
    assert sorted(p.name for p in (tmp_path / "cam").iterdir()) == ["sub-1_a_layers.png", "sub-2_layers.png"]
    assert png_size((tmp_path / "cam" / "sub-2_layers.png").read_bytes()) == (3 * 220, 220)  # image, stem, layer1
    assert len(writer.written) == 2
