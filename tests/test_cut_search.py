"""The cut-point search: scored on folds of the training split only, a mean and standard error per cut, the
one-standard-error rule, the network the bundle trains, block level then layer level, a table and a cut a bundle
takes directly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from medtl_monai.experiments import cut_search
from medtl_monai.experiments.cut_search import (
    CutScore,
    candidate_cuts,
    extract_cut_features,
    finetune_cut,
    inner_folds,
    linear_probe,
    one_standard_error_choice,
    run_cut_search,
    search_cut,
    truncated_copy,
)
from medtl_monai.networks import TransferClassifier, get_family, truncate_backbone

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "bimcv_truncated" / "configs"
XRAY = [str(CONFIGS / "train.json"), str(CONFIGS / "xray.json")]


def _loader(n: int, size: int = 32, seed: int = 0, signal: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 3, size, size, generator=g) + signal * y.view(-1, 1, 1, 1)
    return [{"image": x[i : i + 4], "label": y[i : i + 4]} for i in range(0, n, 4)]


def _score(cut, blocks: int, folds: list[float]) -> CutScore:
    return CutScore(cut, blocks, "layer", f"{blocks}", params=blocks * 1000, macs=0, fold_auroc=folds,
                    fold_auprc=folds)


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


def test_one_standard_error_rule_picks_the_smallest_cut_within_one_se_of_the_best():
    # best mean: cut 6 (0.90, SD 0.1, SE 0.058) -> threshold 0.842; cuts 4 (0.86) and 8 (0.88) qualify, 2 (0.80) not
    scores = [_score(2, 2, [0.80, 0.80, 0.80]), _score(4, 4, [0.86, 0.86, 0.86]),
              _score(6, 6, [0.80, 0.90, 1.00]), _score(8, 8, [0.88, 0.88, 0.88])]
    chosen, best, threshold = one_standard_error_choice(scores)
    assert best.cut == 6 and best.n == 3 and best.se == pytest.approx(0.1 / math.sqrt(3))
    assert threshold == pytest.approx(0.9 - 0.1 / math.sqrt(3)) and chosen.cut == 4
    # a tighter best (SE 0.006) leaves only itself within one SE
    chosen, best, _ = one_standard_error_choice([*scores[:2], _score(6, 6, [0.89, 0.90, 0.91]), scores[3]])
    assert chosen.cut == best.cut == 6
    # folds whose AUROC is undefined are left out of n, the mean and the SE
    assert _score(3, 3, [0.7, float("nan"), 0.9]).n == 2 and _score(3, 3, [0.7, float("nan"), 0.9]).auroc == pytest.approx(0.8)
    with pytest.raises(ValueError, match="no candidate"):
        one_standard_error_choice([_score(1, 1, [float("nan")])])


def test_inner_folds_keep_a_patients_items_together_and_stratify_by_label():
    items = [{"id": f"c{i}", "patient_id": f"p{i // 2}", "label": (i // 2) % 2} for i in range(24)]  # 12 patients
    folds = inner_folds(items, 3, seed=1)
    assert sorted(set(folds)) == [0, 1, 2] and folds == inner_folds(items, 3, seed=1)
    for i in range(0, 24, 2):
        assert folds[i] == folds[i + 1]  # both items of a patient in one fold
    for f in range(3):
        labels = [it["label"] for it, k in zip(items, folds) if k == f]
        assert labels.count(0) == labels.count(1) == 4  # 2 patients of each class per fold
    with pytest.raises(ValueError, match="folds"):
        inner_folds(items, 13)


def test_search_probes_blocks_then_layers_around_the_best_block_and_applies_the_rule(monkeypatch):
    """With a scripted finetune, layer3 wins at block level; cut 7 has the best mean, but cut 5 is within one SE."""
    means = {2: 0.6, 4: 0.8, 6: 0.86, 8: 0.7, 5: 0.85, 7: 0.90}
    spread = {7: 0.09}  # cut 7's folds: 0.81, 0.90, 0.99 -> SE 0.09 / sqrt(3) = 0.052, threshold 0.848
    seen = []

    def fake_finetune(network, train, held_out, **kwargs):
        blocks = network.cut
        seen.append((blocks, len(train[1]), len(held_out[1]), kwargs["seed"]))
        fold = kwargs["seed"]  # search_cut seeds fold f with seed + f
        return means.get(blocks, 0.5) + spread.get(blocks, 0.0) * (fold - 1), 0.5

    monkeypatch.setattr(cut_search, "finetune_cut", fake_finetune)
    net = TransferClassifier("resnet18", 2, 3, 2)
    result = search_cut(net, _loader(12), folds=3, seed=0)
    rows = [(s.level, s.cut) for s in result.scores]
    assert rows[:4] == [("block", "layer1"), ("block", "layer2"), ("block", "layer3"), ("block", "layer4")]
    assert result.best_block == "layer3"
    assert rows[4:] == [("layer", 5), ("layer", 7)]  # inside layer3 and layer4; stage ends (6, 8) are not re-scored
    assert len(seen) == 6 * 3 and {(n_tr, n_ho) for _, n_tr, n_ho, _ in seen} == {(8, 4)}
    assert result.best == 7 and result.threshold == pytest.approx(0.90 - 0.09 / math.sqrt(3))
    assert result.recommended == 5  # 0.85 >= 0.848: the smallest cut within one standard error of the best
    params = {s.cut: s.params for s in result.scores}
    assert params[5] == sum(p.numel() for p in TransferClassifier("resnet18", 2, 3, 2, cut=5).parameters())
    text = result.markdown()
    assert "| layer | **5** |" in text and "(best mean)" in text and "One-standard-error rule" in text
    assert "18 short finetunes: 6 cuts x 3 folds" in text


def test_probe_search_one_forward_pass_per_image_serves_every_cut_and_fold():
    net = TransferClassifier("resnet18", 2, 3, 2)
    stem, calls = net.backbone.stem, []
    stem.register_forward_hook(lambda module, *a: calls.append(module is stem))
    result = search_cut(net, _loader(20, signal=0.5), method="probe", folds=2)
    assert sum(calls) == result.forward_passes == 5  # batches of 4: one pass each, none per cut or fold
    assert all(s.n == 2 for s in result.scores) and "ONE pass per image serves every cut" in result.markdown()


def test_linear_probe_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(40) % 2
    x = torch.randn(40, 16, generator=g) + 3.0 * y.view(-1, 1)
    probs = linear_probe(x[:30], y[:30], x[30:], 2)
    assert probs.shape == (10, 2) and ((probs[:, 1] > 0.5) == y[30:].numpy().astype(bool)).all()


def test_finetune_cut_learns_a_visible_signal_and_leaves_the_network_unchanged(quiet_random_init):
    from medtl_monai.experiments.cut_search import _cached

    torch.manual_seed(0)
    net = truncated_copy(TransferClassifier("resnet18", 2, 3, 2), 2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    train, held = _cached(_loader(48, signal=1.5), "image", "label"), _cached(_loader(16, seed=1, signal=1.5), "image", "label")
    auroc, auprc = finetune_cut(net, train, held, epochs=2, lr=1e-3, batch_size=8)
    assert auroc > 0.9 and auprc > 0.9
    assert (auroc, auprc) == finetune_cut(net, train, held, epochs=2, lr=1e-3, batch_size=8)  # seeded
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("method", ["probe", "finetune"])
@pytest.mark.parametrize("kwargs", [{"cut": "layer3"}, {"slim_after": "layer2"}])
def test_search_refuses_a_cut_or_slimmed_network_it_would_have_to_truncate(method, kwargs, quiet_random_init):
    net = TransferClassifier("resnet18", 2, 3, 2, **kwargs)
    with pytest.raises(ValueError, match="full backbone"):
        search_cut(net, _loader(8), method=method, epochs=1, folds=2)


def _datalist_with_unreadable_held_out_splits(tiny_demo: Path, tmp_path: Path) -> tuple[Path, set[str], set[str]]:
    """The tiny X-ray datalist with every validation and test image pointing to a file that does not exist."""
    doc = json.loads((tiny_demo / "datalist_xray.json").read_text())
    for item in doc["training"]:
        item["image"] = str(tiny_demo / item["image"])
    for split in ("validation", "test"):
        for item in doc[split]:
            item["image"] = str(tmp_path / "missing" / f"{item['id']}.nii.gz")
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps(doc))
    return path, {i["id"] for i in doc["training"]}, {i["id"] for k in ("validation", "test") for i in doc[k]}


def test_the_search_reads_training_items_only_and_searches_the_network_the_bundle_trains(tiny_demo, tmp_path, monkeypatch):
    datalist, training, held_out = _datalist_with_unreadable_held_out_splits(tiny_demo, tmp_path)
    torch.manual_seed(5)
    start = TransferClassifier("resnet18", 2, 3, 2)  # a previous run the bundle starts from (init_from)
    torch.save(start.state_dict(), tmp_path / "model.pt")
    networks = []

    def spy(network, train, held, **kwargs):
        networks.append(network)
        return 0.8, 0.5

    monkeypatch.setattr(cut_search, "finetune_cut", spy)
    result = run_cut_search(XRAY, {"datalist": str(datalist), "image_size": 32, "arch": "resnet18", "inflation": "mean",
                                   "dropout": 0.25, "init_from": str(tmp_path / "model.pt"), "init_head": "new"},
                            folds=2, epochs=1, output_dir=tmp_path / "report")
    assert set(result.loaded) == training and len(result.loaded) == len(training)  # each training image once
    assert not set(result.loaded) & held_out
    assert result.n_items == len(training) and result.folds == 2
    assert len(networks) == 2 * len(result.scores)
    state = start.state_dict()
    for net in networks:  # the bundle's own network_def + prepare_network, cut at the candidate
        assert net.inflation == "mean" and net.dropout == 0.25 and net.cut == net.config["cut"]
        for key, value in net.backbone.state_dict().items():
            torch.testing.assert_close(value, state[f"backbone.{key}"], rtol=0, atol=0)  # started from init_from
    assert result.settings["inflation"] == "mean" and result.settings["init_from"] == str(tmp_path / "model.pt")
    assert result.settings["preprocessing"]["kind"] == "xray" and result.settings["strategy"] == "truncated"
    report = json.loads((tmp_path / "report" / "cut_search.json").read_text())
    assert report["recommended"] == result.recommended and len(report["scores"]) == len(result.scores)
    assert {"auroc", "se", "n", "params", "macs", "seconds"} <= set(report["scores"][0])
    assert (tmp_path / "report" / "cut_search.md").read_text().startswith("Cut-point search for resnet18")
    with pytest.raises(ValueError, match="has no cut"):
        run_cut_search(XRAY, {"datalist": str(datalist), "arch": "resnet18", "strategy": "lwft_full"})


def test_find_cut_cli_scores_training_folds_and_prints_the_bundle_option(tiny_demo, tmp_path, capsys, quiet_random_init):
    """The script end to end (with the fast probe; the default finetune path through the bundle is tested above)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("find_cut", REPO / "scripts" / "find_cut.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--config_file", f"['{XRAY[0]}','{XRAY[1]}']", "--dataset_dir", str(tiny_demo),
                        "--image_size", "32", "--arch", "resnet18", "--report_dir", str(tmp_path), "--folds", "2",
                        "--method", "probe"])
    out = capsys.readouterr().out
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("--cut ")
    report = json.loads((tmp_path / "cut_search.json").read_text())
    assert report["method"] == "probe" and str(report["recommended"]) == last.split()[1]
    assert all(s["n"] == 2 for s in report["scores"]) and [s["level"] for s in report["scores"]][:4] == ["block"] * 4
    assert "probes" in out and "| SE |" in out and "validation and test splits are not read" in out


def test_a_job_array_runs_one_short_finetune_per_task_level_by_level_then_collect_prints_the_table(
        tiny_demo, tmp_path, monkeypatch, capsys, quiet_random_init):
    """--write_slurm plans the block level (one command per cut and fold), each command runs one finetune, the same
    command then plans the layer level around the best block, and --collect builds the search's result from the files:
    the same result as the search run here in one go. A stopped search resumes; another search's folder is refused."""
    import importlib.util
    import shlex
    import sys

    calls = []

    block_means = {"layer1": 0.6, "layer2": 0.8, "layer3": 0.7, "layer4": 0.65}

    def fake_finetune(network, train, held_out, **kwargs):  # a score that depends on the cut and the fold only
        calls.append((network.cut, kwargs["seed"]))
        return block_means.get(network.cut, 0.7 + 0.01 * float(network.cut == 3)) + 0.01 * kwargs["seed"], 0.5

    monkeypatch.setattr(cut_search, "finetune_cut", fake_finetune)
    spec = importlib.util.spec_from_file_location("find_cut", REPO / "scripts" / "find_cut.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report, script = tmp_path / "report", tmp_path / "array" / "cut.sbatch"
    args = ["--config_file", f"['{XRAY[0]}','{XRAY[1]}']", "--dataset_dir", str(tiny_demo), "--image_size", "32",
            "--arch", "resnet18", "--report_dir", str(report), "--folds", "2", "--epochs", "1"]

    def array() -> list[list[str]]:
        assert module.main([*args, "--write_slurm", str(script), "--workers", "4"]) == 0
        return [shlex.split(line) for line in (script.parent / "runs.txt").read_text().splitlines()]

    block = array()
    assert [c[-1] for c in block] == [f"block:{i}" for i in range(8)] and not calls  # 4 cuts x 2 folds, none run
    assert "#SBATCH --array=0-7" in script.read_text() and (report / "runs" / "prepared.pt").is_file()
    assert all(c[:2] == [sys.executable, str(REPO / "scripts" / "find_cut.py")] and "--workers" not in c for c in block)
    for command in block:
        assert module.main(command[2:]) == 0
    assert len(calls) == 8 and len(list((report / "runs").glob("block_*/fold*.json"))) == 8
    with pytest.raises(FileNotFoundError, match="of the layer level are not done"):
        module.main([*args, "--collect"])
    layer = array()
    assert layer and all(c[-1].startswith("layer:") for c in layer) and f"--array=0-{len(layer) - 1}" in script.read_text()
    for command in layer:
        assert module.main(command[2:]) == 0
    trained = len(calls)
    capsys.readouterr()
    assert module.main([*args, "--collect"]) == 0 and len(calls) == trained  # collecting trains nothing
    collected = json.loads((report / "cut_search.json").read_text())
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"--cut {collected['recommended']}"
    assert collected["recommended"] == "layer2" and "95% CI (t, folds)" in (report / "cut_search.md").read_text()
    (report / "runs" / "block_layer2" / "fold1.json").unlink()  # as if the search had stopped before this finetune
    calls.clear()
    overrides = {"dataset_dir": str(tiny_demo), "image_size": 32, "arch": "resnet18"}
    resumed = run_cut_search(XRAY, overrides, folds=2, epochs=1, output_dir=report)  # one go, here: the same search
    assert calls == [("layer2", 1)]
    assert [s.fold_auroc for s in resumed.scores] == [s["fold_auroc"] for s in collected["scores"]]
    with pytest.raises(ValueError, match="another search.*epochs: 1 -> 2"):
        run_cut_search(XRAY, overrides, folds=2, epochs=2, output_dir=report)


def test_a_fold_task_scores_the_same_in_a_worker_as_in_the_search_whatever_ran_before(tmp_path, quiet_random_init):
    from medtl_monai.bundle import load_config
    from medtl_monai.experiments.cut_search import FoldRun, _FoldTask, _run_fold_task, finetune_fold

    g = torch.Generator().manual_seed(0)
    y = torch.arange(12) % 2
    x = torch.randn(12, 3, 32, 32, generator=g) + 1.0 * y.view(-1, 1, 1, 1)
    fold_of = (torch.arange(12) // 2) % 2  # both classes in each fold
    torch.save({"images": x, "labels": y, "fold_of": fold_of, "ids": []}, tmp_path / "prepared.pt")
    overrides = {"arch": "resnet18", "image_size": 32, "distributed": False, "channels_last": False}
    finetune = {"strategy": "truncated", "strategy_options": {}, "epochs": 1, "lr": 1e-3, "batch_size": 4}
    run = FoldRun(0, "block", "layer1", 2, 1, 0)
    torch.manual_seed(run.seed)
    candidate = load_config(None, XRAY, {**overrides, "cut": "layer1"}).get_parsed_content("network")
    here = finetune_fold(candidate, (x, y, fold_of.numpy()), run, **finetune)
    torch.rand(100)  # whatever the process did before, the task seeds itself
    task = _FoldTask(run, tuple(XRAY), overrides, finetune, str(tmp_path / "prepared.pt"), str(tmp_path / "f.json"), "cpu")
    there = _run_fold_task(task, None)
    assert there[:2] == pytest.approx(here[:2], abs=1e-6)
    assert json.loads((tmp_path / "f.json").read_text())["auroc"] == pytest.approx(here[0], abs=1e-6)
