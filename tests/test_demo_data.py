"""The semi-synthetic demo data set: layout, DICOM/NIfTI agreement, labels, splits, reproducibility, signal."""

from __future__ import annotations

import csv
import dataclasses
import json
import runpy
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch
from monai.data import load_decathlon_datalist
from monai.transforms import Compose
from scipy import ndimage

from medtl_monai.data.demo import CLASS_NAMES, make_demo_dataset, plan_cases
from medtl_monai.data.phantom import CTGeometry, render_ct, render_xray, sample_anatomy, sample_findings
from medtl_monai.data.splits import check_no_leakage
from medtl_monai.transforms import ct_preprocessing, xray_preprocessing

SCRIPT = Path(__file__).parents[1] / "scripts" / "make_demo_data.py"
SPLITS = ("training", "validation", "test")
KW = {"n_cases": 8, "seed": 3, "second_session_prob": 0.5, "monochrome1_prob": 0.5}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "demo"
    make_demo_dataset(root, workers=1, **KW)
    return root


def label_rows(root: Path) -> list[dict[str, str]]:
    with (root / "labels.csv").open() as f:
        return list(csv.DictReader(f))


def auroc(scores, labels) -> float:
    s, y = np.asarray(scores), np.asarray(labels)
    pos, neg = s[y == 1], s[y == 0]
    return float((pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean())


class TestLayout:
    def test_every_case_has_all_files(self, demo):
        rows = label_rows(demo)
        assert len(rows) == 8
        for row in rows:
            sub, ses = row["id"].split("_")
            ct = demo / sub / ses / "mod-ct" / f"{row['id']}_run-1_bp-chest_ct.nii.gz"
            assert ct.is_file() and ct.with_name(ct.name.replace(".nii.gz", ".json")).is_file()
            assert len(list((demo / sub / ses / "mod-rx").glob(f"{row['id']}_run-1_bp-chest_vp-*_cr.nii.gz"))) == 1
            assert len(list((demo / "dicom" / row["id"] / "CT").glob("*.dcm"))) == 40
            assert (demo / "dicom" / row["id"] / "CR.dcm").is_file()
        for name in ("dataset_description.json", "participants.tsv", "datalist.json", "datalist_xray.json",
                     "datalist_dicom.json", "datalist_xray_dicom.json"):
            assert (demo / name).is_file()

    def test_labels_balanced_and_patients_consistent(self, demo):
        rows = label_rows(demo)
        assert sorted(r["label"] for r in rows) == ["negative"] * 4 + ["positive"] * 4
        assert all(r["id"].startswith(r["patient_id"] + "_") for r in rows)
        by_patient: dict[str, set[str]] = {}
        for r in rows:
            by_patient.setdefault(r["patient_id"], set()).add(r["label"])
        assert all(len(v) == 1 for v in by_patient.values())  # a patient's sessions share the label
        assert len(by_patient) < len(rows)  # some patients have two sessions
        with (demo / "participants.tsv").open() as f:
            participants = list(csv.DictReader(f, delimiter="\t"))
        assert sum(int(p["n_sessions"]) for p in participants) == 8
        assert {p["participant_id"] for p in participants} == set(by_patient)

    def test_dicom_identity_is_synthetic_and_per_patient(self, demo):
        ids = {}
        for row in label_rows(demo):
            ds = pydicom.dcmread(demo / "dicom" / row["id"] / "CR.dcm", stop_before_pixels=True)
            assert str(ds.PatientName).startswith("DEMO^PATIENT")
            ids.setdefault(row["patient_id"], set()).add(ds.PatientID)
        assert all(len(v) == 1 for v in ids.values()) and len({next(iter(v)) for v in ids.values()}) == len(ids)

    def test_plan_is_balanced_for_odd_counts(self):
        cases = plan_cases(7, seed=1)
        assert sum(c.label == CLASS_NAMES[1] for c in cases) == 3


class TestDicomMatchesNifti:
    def test_ct_series_equals_nifti_voxels_and_geometry(self, demo):
        for row in label_rows(demo)[:3]:
            folder = demo / "dicom" / row["id"] / "CT"
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
            series = reader.Execute()
            sub, ses = row["id"].split("_")
            nifti = sitk.ReadImage(str(next((demo / sub / ses / "mod-ct").glob("*_ct.nii.gz"))))
            assert np.array_equal(sitk.GetArrayFromImage(series), sitk.GetArrayFromImage(nifti))
            assert np.allclose(series.GetOrigin(), nifti.GetOrigin(), atol=1e-3)
            assert np.allclose(series.GetSpacing(), nifti.GetSpacing(), atol=1e-4)
            assert np.allclose(series.GetDirection(), nifti.GetDirection())

    def test_ct_headers_and_shuffled_names(self, demo):
        folder = demo / "dicom" / label_rows(demo)[0]["id"] / "CT"
        headers = [(p.name, pydicom.dcmread(p, stop_before_pixels=True)) for p in sorted(folder.glob("*.dcm"))]
        ds = headers[0][1]
        assert ds.Modality == "CT" and ds.RescaleIntercept == -1024 and ds.RescaleSlope == 1
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert len({h.SeriesInstanceUID for _, h in headers}) == 1 and len({h.SOPInstanceUID for _, h in headers}) == 40
        z = [float(h.ImagePositionPatient[2]) for _, h in headers]
        assert z != sorted(z) and z != sorted(z, reverse=True)  # file names carry no order
        by_z = sorted(headers, key=lambda t: float(t[1].ImagePositionPatient[2]))
        assert [int(h.InstanceNumber) for _, h in by_z] == list(range(40, 0, -1))  # head first
        assert np.allclose(np.diff(sorted(z)), float(ds.SliceThickness))

    def test_cr_equals_nifti_after_photometric_inversion(self, demo):
        seen = set()
        for row in label_rows(demo):
            ds = pydicom.dcmread(demo / "dicom" / row["id"] / "CR.dcm")
            sub, ses = row["id"].split("_")
            nifti = nib.load(next((demo / sub / ses / "mod-rx").glob("*_cr.nii.gz")))
            pixels = ds.pixel_array.astype(np.int32)
            if ds.PhotometricInterpretation == "MONOCHROME1":
                pixels = 4095 - pixels
            seen.add(ds.PhotometricInterpretation)
            assert np.array_equal(pixels, np.asarray(nifti.dataobj).T)
            assert ds.Modality == "CR" and list(ds.ImagerPixelSpacing) == list(ds.PixelSpacing)
        assert seen == {"MONOCHROME1", "MONOCHROME2"}

    def test_preprocessing_gives_the_same_tensor_from_nifti_and_dicom(self, demo):
        doc, doc_dicom = (json.loads((demo / n).read_text()) for n in ("datalist.json", "datalist_dicom.json"))
        item = doc["training"][0]
        twin = next(it for it in doc_dicom["training"] if it["id"] == item["id"])
        pre = Compose(ct_preprocessing(load=True, spatial_size=(48, 48, 16)))
        a = pre({"image": str(demo / item["image"])})["image"]
        b = pre({"image": str(demo / twin["image"])})["image"]
        assert a.shape == (3, 48, 48, 16) and torch.allclose(a, b, atol=1e-4)
        xray = json.loads((demo / "datalist_xray.json").read_text())["training"][0]
        out = Compose(xray_preprocessing(load=True))({"image": str(demo / xray["image"])})["image"]
        assert out.shape == (3, 224, 224)


class TestDatalists:
    def test_one_patient_level_split_shared_by_all_datalists(self, demo):
        assignments = []
        for name in ("datalist", "datalist_xray", "datalist_dicom", "datalist_xray_dicom"):
            doc = json.loads((demo / f"{name}.json").read_text())
            check_no_leakage({k: doc[k] for k in SPLITS})
            assert doc["class_names"] == list(CLASS_NAMES)
            assignments.append({it["id"]: k for k in SPLITS for it in doc[k]})
            for k in SPLITS:
                if doc[k]:
                    assert all(Path(it["image"]).exists() for it in load_decathlon_datalist(
                        demo / f"{name}.json", is_segmentation=False, data_list_key=k))
        assert all(a == assignments[0] for a in assignments) and len(assignments[0]) == 8


class TestReproducibility:
    def test_same_seed_gives_identical_files_whatever_the_workers(self, demo, tmp_path):
        again = tmp_path / "again"
        make_demo_dataset(again, workers=2, **KW)
        files = sorted(p.relative_to(demo) for p in demo.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
        for rel in files:
            if rel.suffix in (".gz", ".dcm", ".csv", ".tsv"):
                assert (demo / rel).read_bytes() == (again / rel).read_bytes(), rel

    def test_other_seed_gives_other_volumes(self, demo, tmp_path):
        other = make_demo_dataset(tmp_path / "other", n_cases=2, seed=4, formats=("nifti",), modalities=("ct",))
        first = next((demo / "sub-S0001").rglob("*_ct.nii.gz"))
        assert not np.array_equal(np.asarray(nib.load(first).dataobj),
                                  np.asarray(nib.load(next(other["root"].rglob("*_ct.nii.gz"))).dataobj))

    def test_existing_folder_is_protected(self, demo, tmp_path):
        with pytest.raises(FileExistsError, match="overwrite"):
            make_demo_dataset(demo, n_cases=2)
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("keep")
        with pytest.raises(FileExistsError, match="refusing"):
            make_demo_dataset(tmp_path / "mine", n_cases=2, overwrite=True)

    def test_script(self, tmp_path, capsys):
        old = sys.argv
        sys.argv = [str(SCRIPT), "--out", str(tmp_path / "s"), "--n-cases", "2", "--formats", "nifti",
                    "--modalities", "xray", "--workers", "1"]
        try:
            with pytest.raises(SystemExit) as exit_info:
                runpy.run_path(str(SCRIPT), run_name="__main__")
        finally:
            sys.argv = old
        assert exit_info.value.code == 0 and "wrote 2 cases" in capsys.readouterr().out
        assert len(list((tmp_path / "s").rglob("*_cr.nii.gz"))) == 2 and not (tmp_path / "s" / "dicom").exists()


@pytest.fixture(scope="module")
def phantoms():
    """40 CT phantoms (label, HU volume, lung mask), alternating negative and positive."""
    out = []
    for i in range(40):
        rng = np.random.default_rng([11, i])
        anat = sample_anatomy(rng)
        findings = sample_findings(rng, anat, positive=bool(i % 2))
        grid = CTGeometry.centred((40, 96, 96), (8.0, 3.5, 3.5), z0=anat.lung_base - 30)
        hu, lung = render_ct(anat, findings, grid, rng=rng)
        out.append((i % 2, hu, lung))
    return out


class TestSignal:
    def test_ground_glass_fraction_in_the_lungs_separates_classes(self, phantoms):
        feature = []
        for _, hu, lung in phantoms:
            inner = hu[ndimage.binary_erosion(lung)]
            feature.append(np.mean((inner > -650) & (inner < -350)))
        assert auroc(feature, [y for y, _, _ in phantoms]) > 0.9

    def test_global_mean_intensity_is_not_a_shortcut(self, phantoms):
        assert auroc([hu.mean() for _, hu, _ in phantoms], [y for y, _, _ in phantoms]) < 0.8

    def test_opacities_sit_near_minus_500_hu_inside_the_lungs(self):
        rng = np.random.default_rng(5)
        anat = sample_anatomy(rng)
        findings = sample_findings(rng, anat, positive=True)
        grid = CTGeometry.centred((40, 96, 96), (8.0, 3.5, 3.5), z0=anat.lung_base - 30)
        clean = dataclasses.replace(findings, opacities=[])
        with_ggo, lung = render_ct(anat, findings, grid, blur=None, noise=False)
        without, _ = render_ct(anat, clean, grid, blur=None, noise=False)
        changed = with_ggo != without
        assert changed.any() and not (changed & ~lung).any()
        assert -650 < np.median(with_ggo[changed & (with_ggo - without > 250)]) < -350
        assert (render_xray(anat, findings) - render_xray(anat, clean)).max() > 150  # visible on the radiograph
