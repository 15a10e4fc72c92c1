"""Inputs faithful to the ImageNet source weights: statistics, rows-first axes, air padding, radiograph polarity."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImage
from PIL import Image

from _bundle_utils import REPO
from medtl_monai.bundle import load_config
from medtl_monai.explain import cam_figure, nifti_affine, plane_slices, save_cam_nifti
from medtl_monai.io import BadCaseError, MedicalImageReader, find_bad_case_error
from medtl_monai.io.xray_reader import display_inverted
from medtl_monai.synthetic.dicom import write_xray
from medtl_monai.transforms import (
    AIR_VALUE_KEY,
    IMAGENET_MEAN,
    IMAGENET_STD,
    air_values,
    ct_preprocessing,
    ct_train_augmentation,
    default_normalization,
    rgb_preprocessing,
    xray_preprocessing,
)

#: A radiograph of 32 rows and 24 columns, dark, with a bright marker in its top-right corner (rows 0-3, columns
#: 20-23), as the detector shows it (MONOCHROME2: low values dark).
ROWS, COLS = 32, 24


def radiograph(high: int = 255) -> np.ndarray:
    image = (np.arange(ROWS * COLS).reshape(ROWS, COLS) % 7 * (high // 40)).astype(np.int64)
    image[:4, -4:] = high
    return image


def xray_chain(size: int = ROWS) -> Compose:
    return Compose(xray_preprocessing(size=size, channels=1, intensity="minmax", normalize="none", load=True,
                                      reader=MedicalImageReader()))


def at(affine, index: tuple[int, int]) -> np.ndarray:
    """The world position of a 2D pixel index under a 3x3 or 4x4 affine."""
    affine = np.asarray(affine, dtype=np.float64)
    return affine @ np.array([*index, *[0] * (len(affine) - 3), 1.0])


def minmax(image: np.ndarray) -> np.ndarray:
    return (image - image.min()) / (image.max() - image.min())


def ct_nifti(path, marker: tuple[int, int, int]) -> np.ndarray:
    """A 20 x 24 x 10 body of soft tissue in air, stored RAS (index i towards the patient's right, j anterior, k up),
    with a bright marker at ``marker``; returns the stored HU."""
    hu = np.full((20, 24, 10), -1000.0, dtype=np.float32)
    hu[2:18, 3:21] = 40.0
    hu[marker] = 1500.0
    nib.save(nib.Nifti1Image(hu, np.diag([2.0, 2.0, 5.0, 1.0])), str(path))
    return hu


# --- 1. ImageNet statistics -----------------------------------------------------------------------------------------


def test_ct_imagenet_normalisation_is_each_window_with_the_statistics_of_its_channel():
    vol = MetaTensor(torch.linspace(-1500, 1500, 16 * 16 * 8).reshape(1, 16, 16, 8), affine=torch.eye(4))
    kw = {"spatial_size": (16, 16, 8), "pixdim": None, "crop": None, "resize": "pad"}
    plain = Compose(ct_preprocessing(normalize="none", **kw))({"image": vol.clone()})["image"]
    normed = Compose(ct_preprocessing(normalize="imagenet", **kw))({"image": vol.clone()})["image"]
    for c in range(3):
        expected = (plain[c].as_tensor() - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        torch.testing.assert_close(normed[c].as_tensor(), expected, rtol=0, atol=1e-5)
    one = Compose(ct_preprocessing(normalize="imagenet", windows=["lung"], **kw))({"image": vol.clone()})["image"]
    torch.testing.assert_close(one[0].as_tensor(), (plain[0].as_tensor() - 0.449) / 0.226, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="normalize"):
        ct_preprocessing(normalize="z-score")


def test_default_normalization_follows_the_weights_then_the_run_started_from(tmp_path):
    assert default_normalization("imagenet") == default_normalization(tmp_path / "resnet50.pth") == "imagenet"
    assert default_normalization(None) == default_normalization("checkpoint") == "none"
    run = tmp_path / "intermediate"
    run.mkdir()
    assert default_normalization(None, run / "model.pt") == "none"  # no card: random initialisation
    for preprocessing, expected in [({"kind": "rgb", "normalize": "imagenet"}, "imagenet"),
                                    ({"kind": "rgb", "normalize": "none"}, "none"),
                                    ({"kind": "rgb"}, "imagenet"), ({"kind": "ct"}, "none")]:  # older cards
        (run / "model_card.json").write_text(json.dumps({"preprocessing": preprocessing}))
        assert default_normalization(None, run / "model.pt") == expected
    assert default_normalization("imagenet", run / "model.pt") == "imagenet"  # pretrained weights decide first


@pytest.mark.parametrize("bundle", ["bimcv_truncated", "two_step_swft"])
def test_bundles_normalise_with_imagenet_statistics_exactly_when_given_pretrained_weights(bundle):
    root = REPO / "bundles" / bundle
    for weights, expected in [(None, "none"), ("imagenet", "imagenet")]:
        parser = load_config(root, "train.json", {"weights": weights, "init_from": None})
        assert parser.get_parsed_content("normalize") == expected
        assert parser.get("preprocessing_transforms")["normalize"] == "@normalize"  # recorded in the model card
    image = json.loads((root / "configs" / "metadata.json").read_text())["network_data_format"]["inputs"]["image"]
    low = min((0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True))
    high = max((1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True))
    assert image["value_range"] == pytest.approx([low, high], abs=1e-3) and "ImageNet" in image["value_range_note"]


# --- 2. rows first ---------------------------------------------------------------------------------------------------


def test_png_and_dicom_radiographs_arrive_rows_first_with_the_marker_top_right(tmp_path):
    png = tmp_path / "cr.png"
    Image.fromarray(radiograph().astype(np.uint8)).save(png)
    dcm = tmp_path / "cr.dcm"
    write_xray(dcm, stored=radiograph(4095), bits_stored=12)
    for path, image in ((png, radiograph()), (dcm, radiograph(4095))):
        out = xray_chain()({"image": str(path)})["image"]
        assert out.shape == (1, ROWS, ROWS)  # 32 rows; 24 columns padded by 4 on each side
        cols = slice(4, 4 + COLS)
        np.testing.assert_allclose(out[0, :, cols].numpy(), minmax(image), rtol=0, atol=1e-6)
        rows, columns = np.nonzero(out[0].numpy() > 0.99)
        assert rows.max() < 4 and columns.min() >= 4 + COLS - 4  # the marker: first rows, last image columns
        # the affine follows: the marker's corner pixel keeps the position it had in the file ((column, row) there)
        file_affine = LoadImage(reader=MedicalImageReader(), image_only=True)(str(path)).affine
        np.testing.assert_allclose(at(out.affine, (0, 4 + COLS - 1)), at(file_affine, (COLS - 1, 0)), atol=1e-6)


def test_rgb_pictures_arrive_rows_first(tmp_path):
    picture = np.zeros((ROWS, COLS, 3), dtype=np.uint8)
    picture[:4, -4:, 0] = 255  # a red top-right corner
    Image.fromarray(picture).save(tmp_path / "photo.png")
    pre = Compose(rgb_preprocessing(size=(ROWS, COLS), normalize="none", load=True))
    out = pre({"image": str(tmp_path / "photo.png")})
    np.testing.assert_allclose(out["image"].numpy(), picture.transpose(2, 0, 1) / 255.0, rtol=0, atol=1e-6)


def test_ct_arrives_in_display_order_and_its_cam_nifti_lands_on_the_anatomy(tmp_path):
    marker = (3, 20, 6)  # stored RAS: i = 3 of 20 is near the patient's LEFT, j = 20 of 24 is ANTERIOR
    ct_nifti(tmp_path / "ct.nii.gz", marker)
    kw = {"spatial_size": (24, 20, 10), "pixdim": None, "crop": None, "resize": "pad", "windows": None}
    pre = Compose(ct_preprocessing(load=True, reader=MedicalImageReader(), **kw))
    out = pre({"image": str(tmp_path / "ct.nii.gz")})
    image = out["image"]
    assert image.shape == (1, 24, 20, 10)  # (AP rows, LR columns, slices)
    peak = np.unravel_index(int(image[0].argmax()), image.shape[1:])
    assert peak == (24 - 1 - 20, 20 - 1 - 3, 6)  # anterior: row 3 from the top; patient-left: column 3 from the right
    # the axial slice is the radiologist's picture: anterior at the top, the patient's left on the right
    axial = plane_slices(image[0].numpy(), peak)["axial"]
    assert np.unravel_index(int(axial.argmax()), axial.shape) == (3, 16)
    coronal = plane_slices(image[0].numpy(), peak)["coronal"]  # superior at the top: slice 6 of 10 -> row 3
    assert np.unravel_index(int(coronal.argmax()), coronal.shape) == (10 - 1 - 6, 16)
    cam = torch.zeros(image.shape[1:])
    cam[peak] = 1.0
    saved = nib.load(save_cam_nifti(cam, nifti_affine(image), tmp_path / "cam.nii.gz"))
    cam_peak = np.unravel_index(int(np.argmax(saved.get_fdata())), saved.shape)
    world = saved.affine @ np.array([*cam_peak, 1.0])
    np.testing.assert_allclose(world, np.diag([2.0, 2.0, 5.0, 1.0]) @ np.array([*marker, 1.0]), atol=1e-4)


def test_left_right_flips_swap_the_patients_sides_and_2d_overlays_are_upright():
    aug = ct_train_augmentation(flip_lr=True)
    flip = next(t for t in aug if type(t).__name__ == "RandFlipd").flipper
    vol = torch.zeros(1, 8, 6, 4)
    vol[0, 1, 5, 2] = 1.0  # anterior, patient-left
    assert torch.nonzero(flip(vol)[0]).tolist() == [[1, 0, 2]]  # same row and slice, now on the patient's right
    image = torch.rand(1, 6, 4, generator=torch.Generator().manual_seed(0))
    fig = cam_figure(image, torch.zeros(6, 4), with_image=True)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), image[0].numpy(), rtol=0, atol=1e-6)


# --- 3. air padding --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", ["none", "imagenet"])
def test_augmented_ct_is_padded_with_air_never_below_it(normalize):
    hu = torch.full((1, 24, 24, 8), 40.0)  # a body filling the field of view
    vol = MetaTensor(hu, affine=torch.eye(4))
    kw = {"spatial_size": (24, 24, 8), "pixdim": None, "crop": None, "normalize": normalize}
    pre = Compose(ct_preprocessing(**kw))({"image": vol})["image"]
    air = air_values(("lung", "mediastinum", "bone"), normalize)
    assert pre.meta[AIR_VALUE_KEY] == pytest.approx(air)
    assert air[0] == pytest.approx(((-1024 + 1350) / 1500 - (IMAGENET_MEAN[0] if normalize == "imagenet" else 0))
                                   / (IMAGENET_STD[0] if normalize == "imagenet" else 1), abs=1e-5)
    aug = Compose(ct_train_augmentation(prob=1.0, rotate_deg=30, scale=0.3, intensity_shift=0, noise_std=0))
    for seed in range(3):
        out = aug.set_random_state(seed=seed)({"image": pre.clone()})["image"]
        for c in range(3):
            assert float(out[c].min()) >= air[c] - 1e-5  # nothing darker than air appears
            assert (out[c] - air[c]).abs().min() < 1e-5  # and air does appear where the image moved away
    zeros = Compose(ct_train_augmentation(prob=1.0, rotate_deg=30, intensity_shift=0, noise_std=0,
                                          padding_mode="zeros"))
    padded = zeros.set_random_state(seed=0)({"image": pre.clone()})["image"]
    assert (padded[0] == 0).any() and abs(air[0]) > 0.2  # the old way: a lung-window value no scan has


# --- 4. polarity -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "I;16"])
@pytest.mark.parametrize("sidecar", [{"PhotometricInterpretation": "MONOCHROME1"},
                                     {"00280004": {"vr": "CS", "Value": ["MONOCHROME1"]}}])
def test_monochrome1_png_with_a_sidecar_arrives_as_its_monochrome2_original(tmp_path, mode, sidecar):
    high = 255 if mode == "L" else 65535
    original = radiograph(high)
    dtype = np.uint8 if mode == "L" else np.uint16
    Image.fromarray(original.astype(dtype)).save(tmp_path / "m2.png")
    Image.fromarray((high - original).astype(dtype)).save(tmp_path / "m1.png")
    (tmp_path / "m1.json").write_text(json.dumps(sidecar))
    (tmp_path / "m2.json").write_text(json.dumps({"PhotometricInterpretation": "MONOCHROME2"}))
    loaded = MedicalImageReader().get_data(MedicalImageReader().read(str(tmp_path / "m1.png")))[0]
    assert loaded[COLS - 1, 0] == 0  # stored inverted: the marker is dark in the file
    pre = Compose(xray_preprocessing(size=ROWS, channels=1, normalize="none", load=True, reader=MedicalImageReader(),
                                     intensity="minmax"))
    m1, m2 = (pre({"image": str(tmp_path / f"{name}.png")})["image"] for name in ("m1", "m2"))
    assert torch.equal(m1.as_tensor(), m2.as_tensor())
    np.testing.assert_allclose(m1[0, :, 4:4 + COLS].numpy(), minmax(original), rtol=0, atol=1e-6)


def test_dicom_presentation_lut_shape_inverse_is_honoured_once(tmp_path):
    original = radiograph(4095)
    cases = {"m2": ("MONOCHROME2", original, None), "m2_inverse": ("MONOCHROME2", 4095 - original, "INVERSE"),
             "m1": ("MONOCHROME1", 4095 - original, None), "m1_inverse": ("MONOCHROME1", 4095 - original, "INVERSE")}
    out = {}
    for name, (photometric, stored, shape) in cases.items():
        header = {"PresentationLUTShape": shape} if shape else None
        write_xray(tmp_path / f"{name}.dcm", stored=stored, photometric=photometric, header=header)
        out[name] = MedicalImageReader().get_data(MedicalImageReader().read(str(tmp_path / f"{name}.dcm")))[0]
    for name in ("m2_inverse", "m1", "m1_inverse"):
        np.testing.assert_array_equal(out[name], out["m2"], err_msg=name)
    np.testing.assert_array_equal(out["m2"].T, original)  # (column, row) as read
    assert [display_inverted(p, s) for p, s in [("MONOCHROME2", None), ("MONOCHROME2", "IDENTITY"),
                                                ("MONOCHROME2", "INVERSE"), ("MONOCHROME1", "INVERSE"),
                                                ("MONOCHROME1", None)]] == [False, False, True, True, True]


def test_an_unreadable_sidecar_is_named(tmp_path):
    Image.fromarray(radiograph().astype(np.uint8)).save(tmp_path / "cr.png")
    (tmp_path / "cr.json").write_text("{not json")
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps a transform's error
        xray_chain()({"image": str(tmp_path / "cr.png")})
    error = find_bad_case_error(raised.value)
    assert isinstance(error, BadCaseError) and str(error).startswith(str(tmp_path / "cr.json"))
