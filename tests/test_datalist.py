"""Datalists (BIMCV and CSV layouts) and patient-level, stratified, seeded splits."""

from __future__ import annotations

import json
import runpy
import sys
from collections import Counter
from pathlib import Path

import pytest
from monai.data import load_decathlon_datalist

from medtl_monai.data import (
    bimcv_items,
    check_no_leakage,
    csv_items,
    encode_label,
    folder_items,
    infer_class_names,
    make_splits,
    patient_split,
    read_class_names,
    write_datalist,
)

SCRIPT = Path(__file__).parents[1] / "scripts" / "make_datalist.py"


def make_items(n_patients=200, seed=0, multi_label=False):
    """Items of ``n_patients`` patients (every fifth has 2 sessions), 30 % positive or 3 multi-hot labels."""
    items = []
    for p in range(n_patients):
        if multi_label:
            label = [int(p % 2 == 0), int(p % 3 == 0), int(p % 5 == 0)]
        else:
            label = int(p % 10 < 3)
        for s in range(2 if p % 5 == 0 else 1):
            items.append({"id": f"p{p}_s{s}", "image": f"/x/p{p}_s{s}.nii.gz", "label": label, "patient_id": f"p{p}"})
    return items


def patients(items):
    return {it["patient_id"] for it in items}


class TestPatientSplit:
    def test_no_patient_in_two_splits_and_nothing_lost(self):
        items = make_items()
        split = patient_split(items, seed=0)
        check_no_leakage(split)
        assert sum(len(v) for v in split.values()) == len(items)
        assert sorted(it["id"] for v in split.values() for it in v) == sorted(it["id"] for it in items)

    def test_fractions_of_patients(self):
        split = patient_split(make_items(), fractions=(0.7, 0.1, 0.2), seed=1)
        counts = [len(patients(split[k])) for k in ("training", "validation", "test")]
        assert counts == [pytest.approx(c, abs=2) for c in (140, 20, 40)]

    def test_stratified_class_proportions(self):
        split = patient_split(make_items(), seed=2)
        for part in split.values():
            labels = [it["label"] for it in part]
            assert sum(labels) / len(labels) == pytest.approx(0.3, abs=0.05)

    def test_same_seed_same_split_other_seed_other_split(self):
        items = make_items()
        a, b, c = patient_split(items, seed=5), patient_split(items, seed=5), patient_split(items, seed=6)
        assert a == b and a != c

    def test_multi_label_combinations_are_stratified(self):
        items = make_items(n_patients=300, multi_label=True)
        split = patient_split(items, seed=0)
        check_no_leakage(split)
        overall = Counter(tuple(it["label"]) for it in items)
        test = Counter(tuple(it["label"]) for it in split["test"])
        for combo, n in overall.items():
            assert test[combo] / len(split["test"]) == pytest.approx(n / len(items), abs=0.05)

    def test_rare_strata_are_pooled_not_all_in_training(self):
        items = [{"id": f"r{i}", "label": 2, "patient_id": f"r{i}"} for i in range(3)] + make_items(100)
        seen = {k for seed in range(20) for k, v in patient_split(items, seed=seed).items()
                for it in v if it["label"] == 2}
        assert seen == {"training", "validation", "test"}

    def test_leak_is_detected(self):
        with pytest.raises(ValueError, match="'p1'"):
            check_no_leakage({"training": [{"patient_id": "p1"}], "test": [{"patient_id": "p1"}]})

    @pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1)])
    def test_bad_fractions_raise(self, fractions):
        with pytest.raises(ValueError, match="fractions"):
            patient_split(make_items(10), fractions=fractions)

    def test_make_splits_writes_three_different_datalists(self, tmp_path):
        items = make_items()
        splits = make_splits(items, seeds=(0, 1, 2), output_dir=tmp_path, class_names=["neg", "pos"])
        files = sorted(tmp_path.glob("datalist_split*.json"))
        assert [f.name for f in files] == ["datalist_split0.json", "datalist_split1.json", "datalist_split2.json"]
        tests = [sorted(it["id"] for it in s["test"]) for s in splits]
        assert tests[0] != tests[1] != tests[2]
        doc = json.loads(files[1].read_text())
        assert doc["split_seed"] == 1 and doc["class_names"] == ["neg", "pos"]


def bimcv_tree(root: Path) -> Path:
    """A tiny BIMCV-like tree: 3 subjects, one with two sessions, CT and X-ray (PA and a lateral)."""
    sessions = [("S01", "E01"), ("S01", "E02"), ("S02", "E03"), ("S03", "E04")]
    for sub, ses in sessions:
        base = root / f"sub-{sub}" / f"ses-{ses}"
        for mod, name in (("mod-ct", f"sub-{sub}_ses-{ses}_run-1_bp-chest_ct.nii.gz"),
                          ("mod-rx", f"sub-{sub}_ses-{ses}_run-1_bp-chest_vp-pa_cr.png"),
                          ("mod-rx", f"sub-{sub}_ses-{ses}_run-1_bp-chest_vp-ll_cr.png")):
            (base / mod).mkdir(parents=True, exist_ok=True)
            (base / mod / name).write_bytes(b"x")
            (base / mod / name.split(".")[0]).with_suffix(".json").write_text("{}")
    labels = root / "labels.tsv"
    labels.write_text("participant\tsession\tlabel\nsub-S01\tses-E01\tCOVID\nS01\tE02\tnormal\n"
                      "sub-S02\tses-E03\tCOVID\nsub-S03\tses-E04\tnormal\n")
    return labels


class TestBimcvLayout:
    def test_ct_items(self, tmp_path):
        labels = bimcv_tree(tmp_path)
        items, names = bimcv_items(tmp_path, labels, modality="ct")
        assert names == ["COVID", "normal"]
        assert [it["id"] for it in items] == ["sub-S01_ses-E01", "sub-S01_ses-E02", "sub-S02_ses-E03",
                                              "sub-S03_ses-E04"]
        assert [it["label"] for it in items] == [0, 1, 0, 1]
        assert [it["patient_id"] for it in items] == ["sub-S01", "sub-S01", "sub-S02", "sub-S03"]
        assert all(Path(it["image"]).name.endswith("_ct.nii.gz") for it in items)

    def test_xray_items_and_views(self, tmp_path):
        labels = bimcv_tree(tmp_path)
        both, _ = bimcv_items(tmp_path, labels, modality="xray")
        pa, _ = bimcv_items(tmp_path, labels, modality="xray", views=["PA"])
        assert len(both) == 8 and len(pa) == 4
        assert pa[0]["id"] == "sub-S01_ses-E01" and both[0]["id"].endswith("_cr")  # two images: stem ids

    def test_subject_level_labels_and_id_column(self, tmp_path):
        bimcv_tree(tmp_path)
        by_subject = tmp_path / "participants.tsv"
        by_subject.write_text("participant_id\tlabel\nsub-S01\t1\nsub-S02\t0\nsub-S03\t0\n")
        items, names = bimcv_items(tmp_path, by_subject)
        assert names == ["0", "1"] and [it["label"] for it in items] == [1, 1, 0, 0]
        by_id = tmp_path / "ids.csv"
        by_id.write_text("id,label\nsub-S01_ses-E01,a\nsub-S01_ses-E02,b\nsub-S02_ses-E03,a\nsub-S03_ses-E04,b\n")
        assert [it["label"] for it in bimcv_items(tmp_path, by_id, class_names=["b", "a"])[0]] == [1, 0, 1, 0]

    def test_multi_label_list_cells(self, tmp_path):
        bimcv_tree(tmp_path)
        labels = tmp_path / "multi.tsv"
        labels.write_text("participant\tsession\tlabel\nS01\tE01\t['COVID 19', 'pneumonia']\nS01\tE02\t[]\n"
                          "S02\tE03\tpneumonia\nS03\tE04\tCOVID 19|pneumonia\n")
        items, names = bimcv_items(tmp_path, labels, multi_label=True)
        assert names == ["COVID 19", "pneumonia"]
        assert [it["label"] for it in items] == [[1, 1], [0, 0], [0, 1], [1, 1]]

    def test_label_outside_class_list_names_file_and_line(self, tmp_path):
        labels = bimcv_tree(tmp_path)
        with pytest.raises(ValueError, match=r"labels\.tsv, line 3: label 'normal' is not in the class list"):
            bimcv_items(tmp_path, labels, class_names=["COVID", "other"])

    def test_label_row_without_image(self, tmp_path):
        labels = bimcv_tree(tmp_path)
        labels.write_text(labels.read_text() + "sub-S09\tses-E09\tCOVID\n")
        with pytest.raises(ValueError, match=r"line 6: no ct image for sub-S09 ses-E09"):
            bimcv_items(tmp_path, labels)
        assert len(bimcv_items(tmp_path, labels, on_missing="skip")[0]) == 4

    def test_missing_columns(self, tmp_path):
        bimcv_tree(tmp_path)
        bad = tmp_path / "bad.csv"
        bad.write_text("participant,diagnosis\nS01,COVID\n")
        with pytest.raises(ValueError, match=r"bad\.csv: missing column 'label'"):
            bimcv_items(tmp_path, bad)
        bad.write_text("who,label\nS01,COVID\n")
        with pytest.raises(ValueError, match="subject column"):
            bimcv_items(tmp_path, bad)


def csv_tree(root: Path) -> Path:
    """Cases as a DICOM study folder, NIfTI files and one without extension in the CSV."""
    (root / "cases" / "c1" / "CT").mkdir(parents=True)
    (root / "cases" / "c2.nii.gz").write_bytes(b"x")
    (root / "cases" / "c3.nii").write_bytes(b"x")
    (root / "cases" / "c4" / "CT").mkdir(parents=True)
    labels = root / "labels.csv"
    labels.write_text("id,label,patient_id\nc1,pos,P1\nc2,neg,P1\nc3,neg,\nc4,pos,P4\n")
    return labels


class TestCsvLayout:
    def test_items(self, tmp_path):
        labels = csv_tree(tmp_path)
        items, names = csv_items(tmp_path / "cases", labels)
        assert names == ["neg", "pos"]
        assert [(it["id"], it["label"], it["patient_id"]) for it in items] == [
            ("c1", 1, "P1"), ("c2", 0, "P1"), ("c3", 0, "c3"), ("c4", 1, "P4")]
        assert Path(items[1]["image"]).name == "c2.nii.gz" and Path(items[0]["image"]).is_dir()

    def test_pattern_inside_case_folders(self, tmp_path):
        labels = csv_tree(tmp_path)
        labels.write_text("id,label\nc1,pos\nc4,neg\n")
        items, _ = csv_items(tmp_path / "cases", labels, pattern="{id}/CT")
        assert [Path(it["image"]).parts[-2:] for it in items] == [("c1", "CT"), ("c4", "CT")]
        assert [it["patient_id"] for it in items] == ["c1", "c4"]  # no patient column: one patient per case

    def test_missing_file_names_row_and_path(self, tmp_path):
        labels = csv_tree(tmp_path)
        labels.write_text(labels.read_text() + "c9,neg,P9\n")
        with pytest.raises(ValueError, match=r"labels\.csv, line 6: no image for id 'c9' at .*c9"):
            csv_items(tmp_path / "cases", labels)

    def test_unknown_label_and_missing_column(self, tmp_path):
        labels = csv_tree(tmp_path)
        with pytest.raises(ValueError, match=r"labels\.csv, line 2: label 'pos' is not in the class list"):
            csv_items(tmp_path / "cases", labels, class_names=["neg"])
        with pytest.raises(ValueError, match=r"missing column 'diagnosis'"):
            csv_items(tmp_path / "cases", labels, label_column="diagnosis")
        with pytest.raises(ValueError, match="does not exist"):
            csv_items(tmp_path / "cases", tmp_path / "nope.csv")


def folders_tree(root: Path) -> Path:
    """``root/<class>/...``: pictures, a nested folder, a folder of DICOM radiographs, a stray text file."""
    files = ["normal/person1_a.png", "normal/person2_b.jpeg", "pneumonia/person1_bacteria_3.png",
             "pneumonia/more/person3_virus_1.png", "pneumonia/dcm/person4_1.dcm", "pneumonia/dcm/person4_2.dcm",
             "pneumonia/notes.txt"]
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")  # listing reads no file
    return root


class TestFoldersLayout:
    def test_class_is_the_sub_folder_and_patient_ids_come_from_the_regex(self, tmp_path):
        items, names = folder_items(folders_tree(tmp_path / "xr"), modality="xray", patient_regex=r"(person\d+)_")
        assert names == ["normal", "pneumonia"]
        assert [(it["id"], it["label"], it["patient_id"]) for it in items] == [
            ("normal/person1_a", 0, "person1"), ("normal/person2_b", 0, "person2"),
            ("pneumonia/dcm/person4_1", 1, "person4"), ("pneumonia/dcm/person4_2", 1, "person4"),
            ("pneumonia/more/person3_virus_1", 1, "person3"), ("pneumonia/person1_bacteria_3", 1, "person1")]
        assert Path(items[0]["image"]) == tmp_path / "xr" / "normal" / "person1_a.png"

    def test_without_a_regex_the_patient_is_the_file_stem_and_class_order_can_be_given(self, tmp_path):
        items, names = folder_items(folders_tree(tmp_path), modality="xray", class_names=["pneumonia", "normal"])
        assert names == ["pneumonia", "normal"]
        assert {it["id"]: (it["label"], it["patient_id"]) for it in items}["normal/person2_b"] == (1, "person2_b")

    def test_ct_cases_are_series_folders_and_nifti_files(self, tmp_path):
        for name in ("covid/p1/CT/1.dcm", "covid/p1/CT/2.dcm", "normal/p2.nii.gz"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(b"")
        items, _ = folder_items(tmp_path, modality="ct")
        assert [(it["id"], it["label"], it["patient_id"]) for it in items] == [("covid/p1/CT", 0, "CT"),
                                                                               ("normal/p2", 1, "p2")]

    def test_bad_regex_unmatched_path_and_empty_class_are_errors(self, tmp_path):
        root = folders_tree(tmp_path)
        with pytest.raises(ValueError, match="has no group"):
            folder_items(root, patient_regex=r"person\d+")
        with pytest.raises(ValueError, match=r"person1_a\.png: patient_regex '.*' does not match 'normal/person1_a\.png'"):
            folder_items(root, patient_regex=r"(person\d+)_(bacteria|virus)")
        (root / "empty").mkdir()
        with pytest.raises(ValueError, match=r"empty: class folder holds no xray images"):
            folder_items(root)


class TestWriteDatalist:
    def test_relative_paths_load_with_monai(self, tmp_path):
        labels = csv_tree(tmp_path)
        items, names = csv_items(tmp_path / "cases", labels)
        path = write_datalist(tmp_path / "lists" / "dl.json", patient_split(items, seed=0), class_names=names,
                              modality="CT")
        doc = json.loads(path.read_text())
        assert doc["labels"] == {"0": "neg", "1": "pos"} and doc["modality"] == {"0": "CT"}
        assert all(not Path(it["image"]).is_absolute() for k in ("training", "validation", "test") for it in doc[k])
        loaded = [it for k in ("training", "validation", "test") if doc[k]  # MONAI cannot load an empty list
                  for it in load_decathlon_datalist(path, is_segmentation=False, data_list_key=k)]
        assert sorted(Path(it["image"]).resolve() for it in loaded) == sorted(Path(it["image"]) for it in items)
        assert read_class_names(path) == ["neg", "pos"]

    def test_class_name_inference_and_encoding(self):
        assert infer_class_names(["10", "2", "1"]) == ["1", "2", "10"]
        assert infer_class_names(["b|a", "c"], multi_label=True) == ["a", "b", "c"]
        assert encode_label("b;c", ["a", "b", "c"], multi_label=True) == [0, 1, 1]
        with pytest.raises(ValueError, match="x.csv, line 7"):
            encode_label("", ["a"], where="x.csv, line 7")


class TestScript:
    def run(self, *args):
        old = sys.argv
        sys.argv = [str(SCRIPT), *map(str, args)]
        try:
            with pytest.raises(SystemExit) as exit_info:
                runpy.run_path(str(SCRIPT), run_name="__main__")
        finally:
            sys.argv = old
        return exit_info.value.code

    def test_three_splits_from_a_bimcv_tree(self, tmp_path, capsys):
        labels = bimcv_tree(tmp_path)
        code = self.run("--layout", "bimcv", "--root", tmp_path, "--labels", labels, "--modality", "ct",
                        "--datalist", tmp_path / "out" / "datalist.json", "--splits", "3", "--seed", "4")
        assert code == 0
        files = sorted((tmp_path / "out").glob("*.json"))
        assert [f.name for f in files] == [f"datalist_split{k}.json" for k in range(3)]
        assert [json.loads(f.read_text())["split_seed"] for f in files] == [4, 5, 6]
        assert "4 items" in capsys.readouterr().out

    def test_single_datalist_from_a_csv(self, tmp_path):
        labels = csv_tree(tmp_path)
        assert self.run("--layout", "csv", "--root", tmp_path / "cases", "--labels", labels,
                        "--datalist", tmp_path / "dl.json") == 0
        doc = json.loads((tmp_path / "dl.json").read_text())
        assert doc["num_classes"] == 2 and sum(doc[f"num_{k}"] for k in ("training", "validation", "test")) == 4

    def test_single_datalist_from_class_folders(self, tmp_path):
        root = folders_tree(tmp_path / "xr")
        assert self.run("--layout", "folders", "--root", root, "--modality", "xray", "--patient_regex", r"(person\d+)_",
                        "--datalist", tmp_path / "dl.json", "--fractions", "0.5", "0.25", "0.25") == 0
        doc = json.loads((tmp_path / "dl.json").read_text())
        assert doc["class_names"] == ["normal", "pneumonia"] and doc["modality"] == {"0": "CR"}
        check_no_leakage({k: doc[k] for k in ("training", "validation", "test")})
        assert min(it["id"] for k in ("training", "validation", "test") for it in doc[k]) == "normal/person1_a"
