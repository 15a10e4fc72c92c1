"""The semi-synthetic demo data set (layout, DICOM/NIfTI agreement, labels, splits, reproducibility, signal) and the
synthetic DICOM writers behind it and behind the reader tests."""

from __future__ import annotations

import csv
import dataclasses
import io
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
from monai.transforms import Compose, LoadImage
from scipy import ndimage

from medtl_monai.data import check_no_leakage
from medtl_monai.io import DicomSeriesReader, DicomXrayReader
from medtl_monai.synthetic import CLASS_NAMES, make_demo_dataset, plan_cases
from medtl_monai.synthetic.dicom import SyntheticVolume, uid, write_ct_series, write_enhanced_ct, write_xray
from medtl_monai.synthetic.phantom import CTGeometry, render_ct, render_xray, sample_anatomy, sample_findings
from medtl_monai.transforms import ct_preprocessing, xray_preprocessing

SCRIPT = Path(__file__).parents[1] / "scripts" / "make_demo_data.py"
SPLITS = ("training", "validation", "test")
KW = {"n_cases": 8, "seed": 3, "second_session_prob": 0.5, "monochrome1_prob": 0.5}


def load_series(path) -> torch.Tensor:
    return LoadImage(reader=DicomSeriesReader(), image_only=True)(str(path))


def resaved(path: Path) -> bytes:
    """The file as pydicom's own ``save_as`` encodes what it reads from it."""
    buffer = io.BytesIO()
    pydicom.dcmread(path).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


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

    def test_ct_series_read_by_dicom_series_reader_equals_nifti_hu(self, demo):
        for row in label_rows(demo)[:3]:
            sub, ses = row["id"].split("_")
            nifti = nib.load(next((demo / sub / ses / "mod-ct").glob("*_ct.nii.gz")))
            volume = load_series(demo / "dicom" / row["id"] / "CT")
            assert volume.shape == nifti.shape == (96, 96, 40)
            np.testing.assert_array_equal(volume.numpy(), np.asarray(nifti.dataobj))  # HU, (x, y, z) both
            np.testing.assert_allclose(volume.meta["affine"].numpy(), nifti.affine, atol=1e-3)

    def test_files_are_what_pydicom_itself_writes(self, demo):
        case = demo / "dicom" / label_rows(demo)[0]["id"]
        for path in [*sorted((case / "CT").glob("*.dcm"))[:3], case / "CR.dcm"]:
            assert path.read_bytes() == resaved(path), path

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


class TestDicomWriters:
    def test_ct_series_written_the_test_way_reads_back_as_its_description(self, tmp_path):
        series = write_ct_series(tmp_path, n_slices=5, rows=7, columns=9, slope=[1.0, 0.5, 2.0, 1.5, 1.0],
                                 intercept=-1000.0, seed=3, realistic_header=True,
                                 orientation=(0.8, 0.6, 0.0, 0.0, 0.0, -1.0))
        assert isinstance(series, SyntheticVolume) and len(series.files) == 5
        volume = load_series(tmp_path)
        np.testing.assert_allclose(volume.numpy(), series.itk_array, rtol=1e-6)
        np.testing.assert_allclose(volume.meta["affine"].numpy(), series.affine_ras, atol=1e-5)
        assert volume.meta["SeriesInstanceUID"] == series.series_uid
        assert all(path.read_bytes() == resaved(path) for path in series.files)  # the fast encoder: standard files

    def test_ct_series_names_instance_numbers_and_header(self, tmp_path):
        stored = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
        series = write_ct_series(tmp_path, stored=stored, shuffle=False, instance_numbers=[4, 3, 2, 1],
                                 file_order=[2, 0, 3, 1], name_prefix="s",
                                 header={"PatientName": "X^Y", "PatientID": "ID7"})
        assert [p.name for p in series.files] == ["s0002.dcm", "s0000.dcm", "s0003.dcm", "s0001.dcm"]
        headers = [pydicom.dcmread(p) for p in series.files]
        assert [int(h.InstanceNumber) for h in headers] == [4, 3, 2, 1]
        assert [float(h.SliceLocation) for h in headers] == [5.0, 7.0, 9.0, 11.0]  # origin z 5, 2 mm apart
        assert {str(h.PatientName) for h in headers} == {"X^Y"} and headers[0].PatientID == "ID7"
        np.testing.assert_array_equal(load_series(tmp_path).numpy(), series.itk_array)

    def test_same_arguments_give_the_same_bytes(self, tmp_path):
        a = write_ct_series(tmp_path / "a", n_slices=3, realistic_header=True, seed=5)
        b = write_ct_series(tmp_path / "b", n_slices=3, realistic_header=True, seed=5)
        assert [p.name for p in a.files] == [p.name for p in b.files]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a.files, b.files))
        assert uid("series", 1) == uid("series", 1) != uid("series", 2)

    @pytest.mark.parametrize("bad", [
        {"file_order": [0, 0, 1]},
        {"instance_numbers": [1, 2]},
        {"offsets": [0.0, 1.0], "stored": np.zeros((3, 2, 2), np.int16)},
        {"stored": np.zeros((2, 2), np.int16)},
        {"header": {"NotAKeyword": 1}},
    ], ids=["file-order", "instance-numbers", "offsets", "stored-2d", "header"])
    def test_ct_series_rejects_inconsistent_arguments(self, tmp_path, bad):
        with pytest.raises(ValueError):
            write_ct_series(tmp_path, **{"n_slices": 3, **bad})

    @pytest.mark.parametrize("bad", [{"photometric": "RGB"}, {"modality": "MR"}, {"stored": np.full((2, 2), 4096)}],
                             ids=["photometric", "modality", "range"])
    def test_xray_rejects_what_it_cannot_write(self, tmp_path, bad):
        with pytest.raises(ValueError):
            write_xray(tmp_path / "x.dcm", **bad)

    def test_xray_and_enhanced_ct_read_back(self, tmp_path):
        path = tmp_path / "cr" / "m1.dcm"  # the folder is created
        stored = write_xray(path, photometric="MONOCHROME1", header={"ViewPosition": "AP"})
        image = LoadImage(reader=DicomXrayReader(apply_voi=False), image_only=True)(str(path))
        np.testing.assert_array_equal(image.numpy(), 4095 - stored.T)
        assert pydicom.dcmread(path).ViewPosition == "AP" and path.read_bytes() == resaved(path)
        volume = write_enhanced_ct(tmp_path / "enhanced.dcm")
        np.testing.assert_allclose(load_series(volume.files[0]).numpy(), volume.itk_array)


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
        sys.argv = [str(SCRIPT), "--output_dir", str(tmp_path / "s"), "--n_cases", "2", "--formats", "nifti",
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
