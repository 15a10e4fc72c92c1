"""The cut-point search: hook features equal the truncated networks' own features, one forward pass serves every cut,
block level then layer level around the best block, a table and a cut a bundle takes directly."""

from __future__ import annotations

import csv

import pytest
import torch

from medtl_monai.networks import TransferClassifier, get_family, truncate_backbone
from medtl_monai.experiments import cut_search
from medtl_monai.experiments.cut_search import candidate_cuts, extract_cut_features, linear_probe, search_cut


def _loader(n: int, size: int = 32, seed: int = 0, signal: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 3, size, size, generator=g) + signal * y.view(-1, 1, 1, 1)
    return [{"image": x[i : i + 4], "label": y[i : i + 4]} for i in range(0, n, 4)]


@pytest.mark.parametrize("arch, cuts", [("resnet18", [1, 2, 5, 8]), ("densenet121", [3, 6, 7, 18, 42, 58])])
def test_hook_features_equal_the_truncated_networks_pooled_output(arch, cuts):
    torch.manual_seed(0)
    net = TransferClassifier(arch, 2, 3, 2).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that the DenseNet tail normalisation matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    data = _loader(4)
    features, labels, passes = extract_cut_features(net, data)
    assert passes == 1 and labels.tolist() == [0, 1, 0, 1]
    assert sorted(features) == [c for c, *_ in candidate_cuts(arch)]
    spec = get_family(arch)
    for cut in cuts:
        truncated = truncate_backbone(net.backbone, spec, cut).eval()
        with torch.no_grad():
            expected = truncated(data[0]["image"]).flatten(2).mean(-1)
        torch.testing.assert_close(features[cut], expected, rtol=1e-5, atol=1e-5)


def test_one_forward_pass_of_the_backbone_serves_every_cut():
    net = TransferClassifier("resnet18", 2, 3, 2)
    calls = []
    net.backbone.stem.register_forward_hook(lambda *a: calls.append(1))
    result = search_cut(net, _loader(12, signal=0.5), _loader(8, seed=1, signal=0.5))
    assert len(calls) == result.forward_passes == 3 + 2  # batches of 4: one pass each, no pass per cut
    assert result.forward_images == 20
    assert "ONE pass per image serves every cut" in result.markdown()


def test_search_probes_blocks_then_layers_around_the_best_block(monkeypatch):
    """With a scripted proxy, the search picks layer3 at block level, then cut 7 among the layer cuts around it."""
    scores = {2: 0.6, 4: 0.8, 6: 0.9, 8: 0.7, 5: 0.85, 7: 0.95}

    def fake_score(features, y_train, y_val, n_train, blocks, num_classes, l2):
        return scores.get(blocks, 0.5), 0.5

    monkeypatch.setattr(cut_search, "_score", fake_score)
    net = TransferClassifier("resnet18", 2, 3, 2)
    result = search_cut(net, _loader(8), _loader(8, seed=1))
    blocks = [(s.level, s.cut) for s in result.scores]
    assert blocks[:4] == [("block", "layer1"), ("block", "layer2"), ("block", "layer3"), ("block", "layer4")]
    assert result.best_block == "layer3"
    assert blocks[4:] == [("layer", 5), ("layer", 6), ("layer", 7), ("layer", 8)]  # layer3's blocks and layer4's
    assert result.recommended == 7
    params = {s.cut: s.params for s in result.scores if s.level == "layer"}
    assert params[6] == sum(p.numel() for p in TransferClassifier("resnet18", 2, 3, 2, cut=6).parameters())


def test_linear_probe_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(40) % 2
    x = torch.randn(40, 16, generator=g) + 3.0 * y.view(-1, 1)
    probs = linear_probe(x[:30], y[:30], x[30:], 2)
    assert probs.shape == (10, 2) and ((probs[:, 1] > 0.5) == y[30:].numpy().astype(bool)).all()


def _run_find_cut(tiny_demo, out_dir, *extra: str) -> int:
    """``scripts/find_cut.py`` on the tiny X-ray demo (ResNet-18, 32 px); returns its exit status."""
    import importlib.util
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("find_cut", repo / "scripts" / "find_cut.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    configs = repo / "bundles" / "bimcv_truncated" / "configs"
    return module.main(["--config_file", f"['{configs / 'train.json'}','{configs / 'xray.json'}']",
                        "--dataset_dir", str(tiny_demo), "--image_size", "32", "--arch", "resnet18",
                        "--report_dir", str(out_dir), *extra])


def test_find_cut_cli_writes_table_and_prints_the_bundle_option(tiny_demo, tmp_path, capsys):
    code = _run_find_cut(tiny_demo, tmp_path)
    out = capsys.readouterr().out
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("--cut ") and 1 <= int(last.split()[1]) <= 8
    assert "Cost:" in out and "forward passes" in out
    with open(tmp_path / "cut_search.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["level"] for r in rows][:4] == ["block"] * 4 and sum(int(r["recommended"]) for r in rows if r["level"] == "layer") == 1
    assert (tmp_path / "cut_search.md").read_text().count("| layer |") >= 2


def test_finetune_cut_learns_a_visible_signal_and_leaves_the_network_unchanged(quiet_random_init):
    from medtl_monai.experiments.cut_search import _cached, finetune_cut

    torch.manual_seed(0)
    net = TransferClassifier("resnet18", 2, 3, 2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    train, val = _cached(_loader(48, signal=1.5), "image", "label"), _cached(_loader(16, seed=1, signal=1.5), "image", "label")
    auroc, auprc = finetune_cut(net, 2, train, val, epochs=2, lr=1e-3, batch_size=8)
    assert auroc > 0.9 and auprc > 0.9
    assert (auroc, auprc) == finetune_cut(net, 2, train, val, epochs=2, lr=1e-3, batch_size=8)  # seeded
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_search_by_finetuning_scores_blocks_then_layers(quiet_random_init):
    net = TransferClassifier("resnet18", 2, 3, 2)
    result = search_cut(net, _loader(16, signal=1.0), _loader(8, seed=1, signal=1.0), method="finetune", epochs=1, lr=1e-3)
    assert result.method == "finetune" and [s.level for s in result.scores][:4] == ["block"] * 4
    assert any(s.level == "layer" for s in result.scores) and isinstance(result.recommended, int)
    text = result.markdown()
    assert "1-epoch finetune" in text and "short finetunes" in text and "finetune AUROC" in text
    with pytest.raises(ValueError, match="unknown"):
        search_cut(net, _loader(8), _loader(8, seed=1), method="grid")


def test_find_cut_cli_finetune_method(tiny_demo, tmp_path, capsys):
    code = _run_find_cut(tiny_demo, tmp_path, "--method", "finetune", "--epochs", "1")
    out = capsys.readouterr().out
    assert code == 0 and out.strip().splitlines()[-1].startswith("--cut ")
    assert "short finetunes of 1 epoch on" in out


@pytest.mark.parametrize("method", ["probe", "finetune"])
@pytest.mark.parametrize("kwargs", [{"cut": "layer3"}, {"slim_after": "layer2"}])
def test_search_refuses_a_cut_or_slimmed_network(method, kwargs, quiet_random_init):
    net = TransferClassifier("resnet18", 2, 3, 2, **kwargs)
    with pytest.raises(ValueError, match="full backbone"):
        search_cut(net, _loader(8), _loader(8, seed=1), method=method, epochs=1)
