"""The strategy study at tiny scale: strategies x three seeded splits through the bundle, the paper-style table."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from medtl_monai.evaluation import delong_test
from medtl_monai.experiments.study import (
    StrategyRow,
    StudyRun,
    run_folder,
    run_study,
    seeded_splits,
    study_table,
    t_interval,
)
from medtl_monai.networks import TransferClassifier, read_checkpoint
from medtl_monai.training import get_strategy

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "bimcv_truncated" / "configs"
TINY = {"arch": "resnet18", "cut": "layer2", "max_epochs": 1, "image_size": 32, "batch_size": 8, "val_batch_size": 8,
        "check_data": False}  # the tiny splits may leave a class out of validation; the study test does not need it


@pytest.fixture(scope="module")
def study(tiny_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    result = run_study([CONFIGS / "train.json", CONFIGS / "xray.json"], CONFIGS / "evaluate.json",
                       datalist=tiny_demo / "datalist_xray.json", output_dir=out, strategies=["linear", "truncated"],
                       seeds=(0, 1, 2), overrides=TINY, repeats=1)
    return result, out


def test_seeded_splits_are_patient_level_and_differ_by_seed(tiny_demo, tmp_path):
    paths = seeded_splits(tiny_demo / "datalist_xray.json", tmp_path, seeds=(0, 1, 2))
    docs = [json.loads(p.read_text()) for p in paths]
    total = sum(len(json.loads((tiny_demo / "datalist_xray.json").read_text())[k]) for k in ("training", "validation", "test"))
    tests = []
    for doc in docs:
        patients = {k: {i.get("patient_id") or i["id"] for i in doc[k]} for k in ("training", "validation", "test")}
        assert not (patients["training"] & patients["test"]) and not (patients["validation"] & patients["test"])
        assert sum(len(doc[k]) for k in ("training", "validation", "test")) == total
        tests.append(sorted(i["id"] for i in doc["test"]))
    assert len({tuple(t) for t in tests}) > 1


def test_study_trains_each_strategy_on_three_splits_and_writes_the_paper_table(study):
    result, out = study
    assert [r.strategy for r in result.rows] == ["linear", "truncated"]
    assert all(len(r.runs) == 3 and [run.split for run in r.runs] == [0, 1, 2] for r in result.rows)
    linear, truncated = result.rows
    assert linear.params == sum(p.numel() for p in TransferClassifier("resnet18", 2, 3, 2).parameters())
    assert truncated.params == sum(p.numel() for p in TransferClassifier("resnet18", 2, 3, 2, cut="layer2").parameters())
    assert truncated.macs < linear.macs and linear.network == "resnet18, full" and truncated.network == "resnet18, cut layer2"
    table = (out / "study.md").read_text()
    described = f"| linear | {get_strategy('linear').description} | resnet18, full |"
    assert described in table and "full network; frozen: the whole backbone" in described
    assert "±" in table and "params (M)" in table and "MACs (G)" in table and "val AUROC (%)" in table
    assert "chosen by validation AUROC" in table and "evaluated once per run" in table
    with open(out / "study.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["strategy"] for r in rows] == ["linear", "truncated"] and all(r["n_splits"] == "3" for r in rows)
    assert rows[1]["description"] == get_strategy("truncated").description
    with open(out / "study_runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
    assert (out / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for k, run_dir in enumerate(sorted((out / "runs" / "truncated").iterdir())):  # each run: its own bundle outputs
        assert (run_dir / "models" / "model.pt").is_file() and (run_dir / "eval" / "metrics.json").is_file()
        last = read_checkpoint(run_dir / "models" / "checkpoint_last.pt")  # the epoch was chosen on validation
        run = truncated.runs[k]
        chosen_by = float("nan") if last["best_metric"] is None else last["best_metric"]  # NaN: one class in validation
        assert run.best_epoch == last["best_epoch"] and run.val_auroc == pytest.approx(chosen_by, nan_ok=True)
        times = json.loads((run_dir / "logs" / "epoch_times.json").read_text())  # the bundle's EpochTimeBreakdown
        assert len(times["epochs"]) == 1 and times["epochs"][0]["step_s"] > 0 and times["epochs"][0]["validation_s"] > 0


def test_cli_reuses_finished_runs_and_writes_its_benchmark_section(study, tiny_demo, tmp_path, capsys):
    _, out = study
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/run.json")}
    spec = importlib.util.spec_from_file_location("compare_strategies", REPO / "scripts" / "compare_strategies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    bench = tmp_path / "benchmarks.md"
    bench.write_text("# Benchmarks\n\n<!-- begin other -->\nkept\n<!-- end other -->\n")
    args = ["--config_file", f"['{CONFIGS / 'train.json'}','{CONFIGS / 'xray.json'}']", "--datalist", str(tiny_demo / "datalist_xray.json"),
            "--study_dir", str(out), "--strategies", "linear", "truncated", "--repeats", "1", "--benchmarks", str(bench),
            *(a for k, v in TINY.items() for a in (f"--{k}", str(v)))]
    assert module.main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/run.json")} == stamps  # nothing retrained
    text = bench.read_text()
    assert "<!-- begin compare_strategies -->" in text and "kept" in text and f"| truncated | {get_strategy('truncated').description} | resnet18, cut layer2 |" in text
    assert "python scripts/compare_strategies.py" in text
    assert "test AUROC" in capsys.readouterr().out


def _fake_predictions(path: Path, labels: list[int], positive: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label", "prob_negative", "prob_positive", "prediction", "status", "error"])
        for i, (y, p) in enumerate(zip(labels, positive)):
            w.writerow([f"case{i}", ["negative", "positive"][y], f"{1 - p:.6f}", f"{p:.6f}",
                        ["negative", "positive"][int(p >= 0.5)], "ok", ""])
        w.writerow(["broken", "", "", "", "", "skipped", "broken.nii.gz: unreadable"])  # a skipped case is left out


def _row(strategy: str, aurocs: list[float]) -> StrategyRow:
    runs = [StudyRun(strategy, k, a, a - 0.05, 1, 2, 10.0, 1.0, 0.8) for k, a in enumerate(aurocs)]
    return StrategyRow(strategy, "resnet18, full", runs, 1_000_000, 2_000_000, 1.5, True, f"{strategy} described")


def test_study_table_compares_with_the_reference_by_split_with_t_intervals_and_delong(tmp_path):
    labels = [0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 0, 1]
    rng = np.random.default_rng(0)
    scores = {}
    for k in range(3):
        for name, noise in (("full", 0.6), ("truncated", 0.4), ("linear", 0.9)):
            s = np.clip(np.asarray(labels) * 0.5 + noise * rng.random(len(labels)), 0, 1).round(6).tolist()
            scores[name, k] = s
            _fake_predictions(run_folder(tmp_path, name, k) / "eval" / "predictions.csv", labels, s)
    rows = [_row("full", [0.80, 0.84, 0.78]), _row("truncated", [0.83, 0.85, 0.84]), _row("linear", [0.70, float("nan"), 0.74])]
    result = study_table(rows, tmp_path, reference="full", settings={"seeds": [0, 1, 2], "repeats": 1})
    assert result.reference == "full" and set(result.comparisons) == {"truncated", "linear"} and not result.reference_note
    truncated, linear = result.comparisons["truncated"], result.comparisons["linear"]
    for k in range(3):  # DeLong on the two runs' predictions of the same split, reference as model A
        for c in (truncated, linear):
            assert c.p_values[k] == pytest.approx(delong_test(labels, scores["full", k], scores[c.strategy, k]).p_value)
    diffs = [0.03, 0.01, 0.06]  # the t-interval by hand: mean ± t(0.975, 2) s / sqrt(3)
    mean, sd = sum(diffs) / 3, math.sqrt(sum((d - sum(diffs) / 3) ** 2 for d in diffs) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)
    assert truncated.interval == pytest.approx((mean, mean - half, mean + half, 3))
    half2 = 12.706204736174707 * (0.06 / math.sqrt(2)) / math.sqrt(2)  # differences -0.10, -0.04: t(0.975, 1)
    assert linear.interval[:3] == pytest.approx((-0.07, -0.07 - half2, -0.07 + half2))
    assert linear.interval[3] == 2 and math.isnan(linear.differences[1])  # the NaN split is kept, not dropped
    assert t_interval([0.8])[0] == 0.8 and math.isnan(t_interval([0.8])[1])  # one split: no interval
    paths = result.write(tmp_path)
    table = paths["md"].read_text()
    assert "| linear | linear described | resnet18, full | 3 (1 NaN) |" in table
    assert "| full | full described | resnet18, full | 3 | " in table and "| reference | reference |" in table
    assert f"{100 * mean:+.1f} [{100 * (mean - half):+.1f}, {100 * (mean + half):+.1f}]" in table
    assert "test AUROC − full (pp) [95% CI]" in table and "DeLong p vs full (split 0, 1, 2)" in table
    with open(paths["csv"]) as f:
        by_name = {r["strategy"]: r for r in csv.DictReader(f)}
    assert by_name["linear"]["n_splits"] == "3" and by_name["linear"]["n_nan"] == "1"
    assert by_name["linear"]["auroc_mean"] == "0.720000" and by_name["full"]["auroc_diff_mean"] == ""
    assert float(by_name["truncated"]["auroc_diff_ci_low"]) == pytest.approx(mean - half, abs=1e-6)
    assert float(by_name["truncated"]["delong_p_split2"]) == pytest.approx(truncated.p_values[2], rel=1e-5)
    auroc = [0.80, 0.84, 0.78]
    m, s = sum(auroc) / 3, math.sqrt(sum((a - sum(auroc) / 3) ** 2 for a in auroc) / 2)
    assert float(by_name["full"]["auroc_ci_high"]) == pytest.approx(m + 4.302652729911275 * s / math.sqrt(3), abs=1e-6)


def test_study_table_falls_back_to_the_first_strategy_and_says_so(tmp_path):
    rows = [_row("linear", [0.7, 0.72]), _row("truncated", [0.75, 0.8])]
    result = study_table(rows, tmp_path, reference="full")
    assert result.reference == "linear" and "`full` was not part of this study" in result.markdown()
    assert result.comparisons["truncated"].p_values == [pytest.approx(float("nan"), nan_ok=True)] * 2  # no predictions
    assert "No DeLong test for: truncated" in result.markdown()


def _outcomes(runs) -> list[tuple]:
    """What a run found (its metrics and chosen epoch), without its wall times; NaN as a string, to compare."""
    return [tuple("nan" if isinstance(v, float) and math.isnan(v) else v
                  for v in (r.strategy, r.split, r.auroc, r.auprc, r.best_epoch, r.epochs, r.val_auroc)) for r in runs]


def _test_probabilities(run_dir: Path) -> np.ndarray:
    with open(run_dir / "eval" / "predictions.csv") as f:
        return np.array([float(row["prob_positive"]) for row in csv.DictReader(f) if row["status"] == "ok"])


def test_a_study_on_two_worker_processes_gives_the_same_runs_as_one_after_another(study, tiny_demo, tmp_path):
    """Each run seeds itself, so two spawned workers (one thread each) train the runs of the sequential study again."""
    sequential, _ = study
    result = run_study([CONFIGS / "train.json", CONFIGS / "xray.json"], CONFIGS / "evaluate.json",
                       datalist=tiny_demo / "datalist_xray.json", output_dir=tmp_path, strategies=["linear", "truncated"],
                       seeds=(0,), overrides=TINY, repeats=1, workers=2)
    expected = [run for r in sequential.rows for run in r.runs if run.split == 0]
    got = [run for r in result.rows for run in r.runs]
    assert _outcomes(got) == _outcomes(expected)
    for strategy in ("linear", "truncated"):  # the same trained networks: the same test probabilities
        np.testing.assert_allclose(_test_probabilities(run_folder(tmp_path, strategy, 0)),
                                   _test_probabilities(run_folder(study[1], strategy, 0)), rtol=0, atol=1e-5)
    assert result.settings["workers"] == 2 and (tmp_path / "study.md").is_file()


def test_a_half_finished_study_trains_only_its_missing_runs(study, tiny_demo, tmp_path):
    """A study folder with one run finished and one whose record was cut short: the finished run is kept, the other is
    trained (a run that never started is the same case without the file)."""
    import shutil

    _, out = study
    shutil.copytree(run_folder(out, "linear", 0), run_folder(tmp_path, "linear", 0))  # its own config names its datalist
    kept, broken = (run_folder(tmp_path, "linear", k) / "run.json" for k in range(2))
    stamp = kept.stat().st_mtime_ns
    broken.parent.mkdir(parents=True)
    broken.write_text('{"strategy": "linear", "split": 1')  # a record cut short counts as not finished
    lines = []
    result = run_study([CONFIGS / "train.json", CONFIGS / "xray.json"], CONFIGS / "evaluate.json",
                       datalist=tiny_demo / "datalist_xray.json", output_dir=tmp_path, strategies=["linear"],
                       seeds=(0, 1), overrides=TINY, repeats=1, progress=lines.append)
    assert lines[0].startswith("1 of 2 runs are finished") and len(lines) == 2  # the note, then the trained run
    assert kept.stat().st_mtime_ns == stamp and json.loads(broken.read_text())["auroc"] is not None
    assert [run.split for run in result.rows[0].runs] == [0, 1]


def test_write_slurm_lists_one_runnable_command_per_run_and_collect_builds_the_table(tiny_demo, tmp_path, capsys):
    import shlex
    import subprocess
    import sys

    spec = importlib.util.spec_from_file_location("compare_strategies", REPO / "scripts" / "compare_strategies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    study_dir, script = tmp_path / "study", tmp_path / "array" / "study.sbatch"
    args = ["--config_file", f"['{CONFIGS / 'train.json'}','{CONFIGS / 'xray.json'}']", "--datalist",
            str(tiny_demo / "datalist_xray.json"), "--study_dir", str(study_dir), "--strategies", "linear", "truncated",
            "--seeds", "0", "--repeats", "1", *(a for k, v in TINY.items() for a in (f"--{k}", str(v)))]
    assert module.main([*args, "--write_slurm", str(script), "--workers", "3", "--sbatch=--gres=gpu:1"]) == 0
    commands = [shlex.split(line) for line in (script.parent / "runs.txt").read_text().splitlines()]
    assert len(commands) == 2 and not list(study_dir.glob("runs/*/*/run.json"))  # nothing trained yet
    text = script.read_text()
    assert "#SBATCH --array=0-1" in text and "#SBATCH --gres=gpu:1" in text and "SLURM_ARRAY_TASK_ID + 1" in text
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    for index, command in enumerate(commands):
        assert command[:2] == [sys.executable, str(REPO / "scripts" / "compare_strategies.py")]
        assert command[-2:] == ["--only", str(index)] and "--workers" not in command and "--write_slurm" not in command
    with pytest.raises(FileNotFoundError, match="--only 0 .linear split 0"):
        module.main([*args, "--collect"])
    for command in commands:  # what task i of the array runs (in this process: the same main, the same arguments)
        assert module.main(command[2:]) == 0
    assert len(list(study_dir.glob("runs/*/*/run.json"))) == 2
    assert module.main([*args, "--collect"]) == 0
    assert "| truncated |" in (study_dir / "study.md").read_text() and "| linear |" in capsys.readouterr().out


# ---- liftings and weight sources compared like strategies -----------------------------------------------------------

TINY_CT_STUDY = {"arch": "resnet18", "cut": "stem", "max_epochs": 1, "image_size": [32, 32, 16], "batch_size": 4,
                 "val_batch_size": 4, "check_data": False}


@pytest.fixture(scope="module")
def lifting_study(tiny_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("lifting_study")
    result = run_study([CONFIGS / "train.json"], CONFIGS / "evaluate.json", datalist=tiny_demo / "datalist.json",
                       output_dir=out, strategies=["truncated"], liftings=["inflate", "acs"], seeds=(0,),
                       overrides=TINY_CT_STUDY, repeats=1)
    return result, out


def _params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def test_a_lifting_study_has_one_row_per_lifting_with_that_liftings_network(lifting_study):
    result, out = lifting_study
    assert [r.name for r in result.rows] == ["truncated · inflate", "truncated · acs"]
    inflate, acs = result.rows
    assert inflate.params == _params(TransferClassifier("resnet18", 3, 3, 2, cut="stem", lifting="inflate"))
    assert acs.params == _params(TransferClassifier("resnet18", 2, 3, 2, cut="stem"))  # ACS: exactly the 2D network
    assert acs.params < inflate.params and acs.network == "resnet18, cut stem, ACS"
    assert result.reference == "truncated · inflate"  # the strategy's first row: the first lifting listed
    for row, lifting in zip(result.rows, ("inflate", "acs")):
        run_dir = run_folder(out, row.folder, 0)
        assert row.runs[0].lifting == lifting and json.loads((run_dir / "run.json").read_text())["lifting"] == lifting
        card = json.loads((run_dir / "models" / "model_card.json").read_text())
        assert card["network"]["lifting"] == lifting  # the run's override reached the network it trained
    assert {p.parent.name for p in out.glob("runs/*/split0")} == {"truncated__lifting-inflate",
                                                                   "truncated__lifting-acs"}
    table = (out / "study.md").read_text()
    assert "| strategy · lifting |" in table and "| truncated · acs | " in table
    assert "test AUROC − truncated · inflate (pp)" in table and "override `lifting`" in table
    with open(out / "study.csv") as f:
        assert [(r["strategy"], r["label"], r["lifting"]) for r in csv.DictReader(f)] == [
            ("truncated", "truncated · inflate", "inflate"), ("truncated", "truncated · acs", "acs")]


def test_the_cli_resumes_a_lifting_study_without_training_a_finished_variant(lifting_study, tiny_demo, tmp_path,
                                                                             capsys):
    _, out = lifting_study
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/run.json")}
    assert len(stamps) == 2
    spec = importlib.util.spec_from_file_location("compare_strategies", REPO / "scripts" / "compare_strategies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    bench = tmp_path / "benchmarks.md"
    args = ["--config_file", str(CONFIGS / "train.json"), "--datalist", str(tiny_demo / "datalist.json"),
            "--study_dir", str(out), "--strategies", "truncated", "--liftings", "inflate", "acs", "--seeds", "0",
            "--repeats", "1",
            *(a for k, v in TINY_CT_STUDY.items()
              for a in (f"--{k}", json.dumps(v) if isinstance(v, list) else str(v)))]
    assert module.main([*args, "--reference", "truncated · acs", "--benchmarks", str(bench)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/run.json")} == stamps  # nothing retrained
    printed = capsys.readouterr().out
    assert "2 of 2 runs are finished" in printed and "0 to train" in printed
    assert "test AUROC − truncated · acs (pp)" in printed  # a row's name as the reference
    text = bench.read_text()  # its own section: a lifting study does not replace the strategies' one
    assert "<!-- begin compare_liftings -->" in text and "--liftings inflate acs" in text
    assert module.main([*args, "--write_slurm", str(tmp_path / "study.sbatch")]) == 0  # the same plan: all finished
    assert "every run of" in capsys.readouterr().out and not (tmp_path / "runs.txt").exists()
    with pytest.raises(SystemExit):  # a reference that names no row nor strategy is refused before anything runs
        module.main([*args, "--reference", "truncated · slices"])


def test_variants_name_rows_and_folders_only_by_what_varies():
    from medtl_monai.experiments.study_variants import Variant, study_variants, weights_label

    plain = study_variants(["full", "truncated"])
    assert [(v.label, v.folder, v.overrides()) for v in plain] == [
        ("full", "full", {"strategy": "full"}), ("truncated", "truncated", {"strategy": "truncated"})]
    one = study_variants(["truncated"], ["acs"], ["/w/resnet18-proxy.pth"])  # one value each: overrides, no names
    assert one[0].label == "truncated" and one[0].folder == "truncated"
    assert one[0].overrides() == {"lifting": "acs", "weights": "/w/resnet18-proxy.pth", "strategy": "truncated"}
    grid = study_variants(["truncated"], ["inflate", "slices"], ["none", "/w/resnet18-proxy.pth"])
    assert [v.label for v in grid] == ["truncated · inflate · random", "truncated · inflate · resnet18-proxy",
                                       "truncated · slices · random", "truncated · slices · resnet18-proxy"]
    assert grid[0].overrides() == {"lifting": "inflate", "slab": 1, "slice_stride": 1, "aggregator": "mean",
                                   "chunk_slices": None, "weights": None, "strategy": "truncated"}
    assert grid[3].overrides() == {"lifting": "slices", "weights": "/w/resnet18-proxy.pth", "strategy": "truncated"}
    folders = [v.folder for v in grid]
    assert folders[0] == "truncated__lifting-inflate__weights-random" and len(set(folders)) == 4
    assert folders[1].startswith("truncated__lifting-inflate__weights-resnet18-proxy-")  # + 8 hex of the path's hash
    again = study_variants(["truncated"], ["inflate", "slices"], ["random", "/w/resnet18-proxy.pth"])
    assert folders == [v.folder for v in again]  # stable: the same options give the same folders
    same_name = Variant("truncated", None, "/v/resnet18-proxy.pth", ("weights",)).folder
    assert same_name != folders[1].replace("lifting-inflate__", "")  # a file of the same name elsewhere: another folder
    assert weights_label("medicalnet:/w/resnet_50_23dataset.pth") == "medicalnet:resnet_50_23dataset"
    assert weights_label("timm/resnet50.a1_in1k") == "timm/resnet50.a1_in1k" and weights_label(None) == "random"
    for bad, message in (((["full"], ["voxels"]), "not one of"), ((["full"], None, ["none", "random"]), "given twice"),
                         ((["full"], None, ["/a/w.pth", "/b/w.pth"]), "different names"),
                         ((["full"], None, ["", "none"]), "empty setting")):
        with pytest.raises(ValueError, match=message):
            study_variants(*bad)


def test_the_macs_of_a_2d5_network_count_every_slab():
    from medtl_monai.networks import profile_model

    flat = profile_model(TransferClassifier("resnet18", 2, 3, 2, cut="layer1").eval(), (1, 3, 32, 32), 1, 0, False)
    for chunk in (None, 4):  # chunked or not, every slab runs inside the counted pass
        net = TransferClassifier("resnet18", 3, 3, 2, cut="layer1", lifting="slices", slice_stride=2,
                                 chunk_slices=chunk)
        lifted = profile_model(net, (1, 3, 32, 32, 7), 1, 0, False)
        assert lifted.params == flat.params
        assert lifted.macs == pytest.approx(4 * flat.macs, rel=1e-3)  # 7 slices, stride 2: 4 slabs, one head


def test_study_table_takes_a_strategy_or_a_row_name_as_the_reference(tmp_path):
    from medtl_monai.experiments.study_variants import study_variants

    variants = study_variants(["truncated"], ["inflate", "acs"])
    rows = []
    for variant, aurocs in zip(variants, ([0.8, 0.82], [0.84, 0.83])):
        row = _row(variant.strategy, aurocs)
        row.variant = variant
        rows.append(row)
    labels = [0, 1, 0, 1, 1, 0, 1, 0]
    for row, noise in zip(rows, (0.7, 0.5)):
        for k in range(2):
            positive = np.clip(np.asarray(labels) * 0.5 + noise * np.random.default_rng(k).random(8), 0, 1).round(6)
            csv_path = run_folder(tmp_path, row.folder, k) / "eval" / "predictions.csv"
            _fake_predictions(csv_path, labels, positive.tolist())
    by_strategy = study_table(rows, tmp_path, reference="truncated")
    assert by_strategy.reference == "truncated · inflate" and list(by_strategy.comparisons) == ["truncated · acs"]
    assert by_strategy.comparisons["truncated · acs"].differences == pytest.approx([0.04, 0.01])
    assert not math.isnan(by_strategy.comparisons["truncated · acs"].p_values[0])  # DeLong read from the row's folder
    by_name = study_table(rows, tmp_path, reference="truncated · acs")
    assert by_name.reference == "truncated · acs" and list(by_name.comparisons) == ["truncated · inflate"]
    missing = study_table(rows, tmp_path, reference="full")
    assert missing.reference == "truncated · inflate"
    assert "against the first row, `truncated · inflate`" in missing.markdown()
