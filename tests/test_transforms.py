"""CT and X-ray transforms: windows, crops, sizes, normalisation, seeded augmentation, bundle-config use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import Compose

from medtl_monai.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AdaptChannels,
    BodyMask,
    HUWindows,
    HUWindowsd,
    LungMask,
    To2D,
    ct_preprocessing,
    ct_train_augmentation,
    resolve_window,
    xray_preprocessing,
    xray_train_augmentation,
)


def chest_volume(shape=(48, 40, 16), spacing=(7.0, 7.0, 20.0)) -> MetaTensor:
    """A tiny HU chest in LPS storage (like a DICOM stack): air, a body ellipse, two lungs, a table below."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = (x / 0.8) ** 2 + (y / 0.6) ** 2 <= 1
    hu[body] = 40.0
    for cx in (-0.4, 0.4):
        hu[((x - cx) / 0.25) ** 2 + (y / 0.4) ** 2 <= 1] = -850.0
    hu[:, -3:-2] = 200.0  # table, detached from the body
    hu[:, :, :2] = np.where(body[..., None], 40.0, -1000.0)  # no lungs in the lowest slices
    affine = torch.diag(torch.tensor([-spacing[0], -spacing[1], spacing[2], 1.0]))
    return MetaTensor(torch.from_numpy(hu)[None], affine=affine)


class TestHUWindows:
    def test_named_windows_are_width_level(self):
        assert resolve_window("lung") == (-1350.0, 150.0)
        assert resolve_window("Mediastinum") == (-125.0, 225.0)
        assert resolve_window("bone") == (-500.0, 1300.0)
        assert resolve_window((-1000, 400)) == (-1000.0, 400.0)

    @pytest.mark.parametrize("bad", ["liver", (400, -1000), (1, 2, 3)])
    def test_bad_window_raises(self, bad):
        with pytest.raises(ValueError):
            resolve_window(bad)

    def test_each_window_is_a_channel_in_unit_range(self):
        img = torch.linspace(-2000, 2000, 4 * 5 * 6).reshape(1, 4, 5, 6)
        out = HUWindows(windows=("lung", "mediastinum", "bone"))(img)
        assert out.shape == (3, 4, 5, 6)
        assert out.min() == 0 and out.max() == 1

    @pytest.mark.parametrize(("hu", "window", "expected"), [
        (-600.0, "lung", 0.5), (50.0, "mediastinum", 0.5), (400.0, "bone", 0.5),
        (-1350.0, "lung", 0.0), (150.0, "lung", 1.0), (-2000.0, "bone", 0.0), (3000.0, "mediastinum", 1.0),
        (-300.0, (-1000, 400), 0.5),
    ])
    def test_known_hu_maps_to_known_value(self, hu, window, expected):
        out = HUWindows(windows=[window])(torch.full((1, 2, 2, 2), hu))
        assert torch.allclose(out, torch.full_like(out, expected))

    def test_single_bare_pair_is_one_window(self):
        assert HUWindows(windows=(-1000, 400))(torch.zeros(1, 2, 2)).shape == (1, 2, 2)

    def test_multichannel_input_raises(self):
        with pytest.raises(ValueError, match="single-channel"):
            HUWindows()(torch.zeros(2, 3, 3))

    def test_dict_wrapper_keeps_metadata(self):
        vol = chest_volume()
        out = HUWindowsd("image", windows=("lung",))({"image": vol})["image"]
        assert isinstance(out, MetaTensor) and torch.equal(out.affine, vol.affine)


class TestCropMasks:
    def test_body_mask_drops_the_table(self):
        vol = chest_volume()
        mask = BodyMask()(vol)
        assert mask.shape == vol.shape and mask.dtype == torch.bool
        assert not mask[0, :, -3].any() and mask[0, 24, 20].all()

    def test_body_mask_cuts_a_thin_bridge_to_the_table(self):
        vol = chest_volume()
        vol[0, 24, 30:38, :] = 40.0  # a one-voxel cable from the body to the table
        mask = BodyMask()(vol)
        assert not mask[0, :, -3].any() and mask[0, 24, 20].all()
        assert BodyMask(opening=0)(vol)[0, :, -3].any()

    def test_lung_mask_is_the_air_inside_the_body(self):
        vol = chest_volume()
        vol[0, :, -1] = 200.0  # a second table slab: air between the slabs touches the sides only
        lungs = LungMask().lungs(vol)
        assert lungs.any() and not lungs[0, 0, :].any()  # outside air removed
        assert not lungs[:, -2].any()  # air between the table slabs removed
        assert lungs[..., -1].any()  # lungs cut at the top of the scan are kept
        assert (vol[0].numpy()[lungs] < -400).all()

    def test_lung_mask_falls_back_to_body_without_lungs(self):
        vol = torch.full((1, 8, 8, 4), -1000.0)
        vol[:, 2:6, 2:6] = 40.0
        assert torch.equal(LungMask()(vol), BodyMask()(vol))


class TestCTPreprocessing:
    @pytest.mark.parametrize("crop", ["body", "lung", None])
    @pytest.mark.parametrize("resize", ["resize", "pad"])
    def test_output_shape_and_range(self, crop, resize):
        pre = Compose(ct_preprocessing(spatial_size=(32, 24, 8), pixdim=(7.0, 7.0, 20.0), crop=crop, resize=resize))
        out = pre({"image": chest_volume()})["image"]
        assert out.shape == (3, 32, 24, 8) and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1

    def test_one_window_gives_one_channel_and_none_keeps_hu(self):
        one = Compose(ct_preprocessing(spatial_size=(16, 16, 8), windows=["lung"]))({"image": chest_volume()})
        assert one["image"].shape[0] == 1
        raw = Compose(ct_preprocessing(spatial_size=(16, 16, 8), windows=None))({"image": chest_volume()})
        assert raw["image"].min() < -500

    def test_orientation_is_ras(self):
        out = Compose(ct_preprocessing(spatial_size=(16, 16, 8), pixdim=None, crop=None))({"image": chest_volume()})
        assert (torch.diagonal(out["image"].affine)[:3] > 0).all()

    def test_body_crop_removes_air_and_table(self):
        kw = {"spatial_size": (48, 40, 16), "pixdim": None, "resize": "pad", "windows": None}
        full = Compose(ct_preprocessing(crop=None, **kw))({"image": chest_volume()})["image"]
        body = Compose(ct_preprocessing(crop="body", crop_margin=0, **kw))({"image": chest_volume()})["image"]
        # the crop pads back with air: more air, and no table row
        assert (body < -900).float().mean() > (full < -900).float().mean()
        assert (body > 150).sum() == 0 < (full > 150).sum()

    @pytest.mark.parametrize(("kw", "match"), [({"crop": "heart"}, "crop"), ({"resize": "zoom"}, "resize"),
                                               ({"spatial_size": (8, 8)}, "3D")])
    def test_bad_arguments_raise(self, kw, match):
        with pytest.raises(ValueError, match=match):
            ct_preprocessing(**kw)


class TestXrayPreprocessing:
    def test_aspect_ratio_is_kept_before_padding(self):
        img = torch.zeros(1, 300, 300)
        img[0, 100:200, 50:250] = 1.0  # a 100 x 200 rectangle of ones on a square
        pre = Compose(xray_preprocessing(size=150, normalize="none", intensity="minmax", channels=1))
        out = pre({"image": img})["image"][0]
        rows, cols = torch.nonzero(out > 0.5, as_tuple=True)
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert w / h == pytest.approx(2.0, rel=0.05)

    def test_non_square_image_is_fitted_then_padded(self):
        img = torch.ones(1, 100, 200, 1)  # a one-slice "volume" as readers return it
        img[0, 0, 0] = 0
        pre = Compose(xray_preprocessing(size=64, normalize="none", intensity="minmax", channels=1))
        out = pre({"image": img})["image"]
        assert out.shape == (1, 64, 64)
        assert torch.all(out[0, :16] == 0) and torch.all(out[0, -16:] == 0)  # padding
        assert out[0, 20:44].mean() > 0.99  # image, longest side -> 64

    def test_imagenet_normalisation(self):
        img = torch.rand(1, 80, 80, generator=torch.Generator().manual_seed(0))
        out = Compose(xray_preprocessing(size=80, intensity="minmax"))({"image": img})["image"]
        assert out.shape == (3, 80, 80)
        for c in range(3):  # undo the normalisation: every channel is the same [0, 1] image
            restored = out[c] * IMAGENET_STD[c] + IMAGENET_MEAN[c]
            assert restored.min() == pytest.approx(0.0, abs=1e-5) and restored.max() == pytest.approx(1.0, abs=1e-5)
        expected = [(0.5 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
        assert out.mean((1, 2)).tolist() == pytest.approx(expected, abs=0.05)

    def test_rgb_input_becomes_gray_then_three_channels(self):
        img = torch.rand(3, 40, 40)
        out = Compose(xray_preprocessing(size=32, normalize="none"))({"image": img})["image"]
        assert out.shape == (3, 32, 32) and torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])

    def test_percentile_scaling_clips_outliers(self):
        img = torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(1))
        img[0, 0, 0] = 1000.0  # burnt-in marker
        out = Compose(xray_preprocessing(size=64, normalize="none", channels=1))({"image": img})["image"]
        assert out.min() == 0 and out.max() == 1 and out.mean() == pytest.approx(0.5, abs=0.05)


class TestSmallTransforms:
    @pytest.mark.parametrize(("shape", "expected"), [((1, 5, 6), (1, 5, 6)), ((1, 5, 6, 1), (1, 5, 6)),
                                                     ((2, 1, 5, 6), (2, 5, 6)), ((1, 1, 1, 1), (1, 1, 1))])
    def test_to2d(self, shape, expected):
        assert To2D()(torch.zeros(shape)).shape == expected

    def test_to2d_refuses_a_volume(self):
        with pytest.raises(ValueError, match="2D"):
            To2D()(torch.zeros(1, 4, 5, 6))

    def test_adapt_channels(self):
        assert AdaptChannels(channels=3)(torch.zeros(1, 4, 4)).shape == (3, 4, 4)
        assert AdaptChannels(channels=1)(torch.ones(3, 4, 4)).shape == (1, 4, 4)
        with pytest.raises(ValueError):
            AdaptChannels(channels=3)(torch.zeros(2, 4, 4))


class TestAugmentation:
    def run(self, transforms, img, seed):
        return Compose(transforms).set_random_state(seed=seed)({"image": img.clone()})["image"]

    @pytest.mark.parametrize(("factory", "img"), [
        (ct_train_augmentation, torch.rand(3, 24, 24, 8, generator=torch.Generator().manual_seed(0))),
        (xray_train_augmentation, torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))),
    ])
    def test_same_seed_same_result_and_shape(self, factory, img):
        aug = factory(prob=1.0)
        a, b, c = self.run(aug, img, 3), self.run(aug, img, 3), self.run(aug, img, 4)
        assert a.shape == img.shape
        assert torch.equal(a, b) and not torch.equal(a, c)

    def test_no_flips_by_default_and_never_vertical(self):
        names = {type(t).__name__ for t in ct_train_augmentation() + xray_train_augmentation()}
        assert "RandFlipd" not in names
        flips = [t for t in xray_train_augmentation(flip_lr=True) if type(t).__name__ == "RandFlipd"]
        assert len(flips) == 1 and flips[0].flipper.spatial_axis == 0

    def test_ct_rotation_without_tilt_stays_in_the_axial_plane(self):
        img = torch.ones(1, 24, 24, 8) * torch.arange(1, 9).float()  # each axial slice has its own value
        aug = ct_train_augmentation(prob=1.0, rotate_deg=10, tilt_deg=0, scale=0, intensity_shift=0, noise_std=0)
        out = self.run(aug, img, 0)
        assert not torch.equal(out, img)  # rotated: corners padded with 0
        for k in range(8):  # no mixing across slices: interiors keep the slice's value, only edges blend with 0
            values = out[0, ..., k][out[0, ..., k] > 0]
            assert values.max() <= k + 1 + 1e-4 and values.median() == pytest.approx(k + 1, abs=1e-4)

    def test_small_augmentation_keeps_ct_values_near_range(self):
        img = torch.rand(3, 24, 24, 8)
        out = self.run(ct_train_augmentation(prob=1.0), img, 0)
        assert out.min() > -0.2 and out.max() < 1.2


class TestBundleConfig:
    def test_factories_and_transforms_instantiate_from_config(self):
        config = {
            "ct_pre": {"_target_": "medtl_monai.transforms.ct_preprocessing", "keys": ["image"],
                       "spatial_size": [16, 16, 8], "pixdim": [7.0, 7.0, 20.0], "windows": ["lung", "bone"]},
            "ct_aug": {"_target_": "medtl_monai.transforms.ct_train_augmentation", "prob": 1.0},
            "train": {"_target_": "Compose", "transforms": "$@ct_pre + @ct_aug"},
            "xray": {"_target_": "Compose", "transforms": {"_target_": "medtl_monai.transforms.xray_preprocessing",
                                                          "size": 32}},
            "window": {"_target_": "medtl_monai.transforms.HUWindowsd", "keys": "image", "windows": ["lung"]},
            "body": {"_target_": "medtl_monai.transforms.BodyMask", "threshold": -400},
        }
        parser = ConfigParser(config)
        train = parser.get_parsed_content("train")
        out = train.set_random_state(seed=0)({"image": chest_volume()})["image"]
        assert out.shape == (2, 16, 16, 8)
        assert parser.get_parsed_content("xray")({"image": torch.rand(1, 40, 20)})["image"].shape == (3, 32, 32)
        window = parser.get_parsed_content("window")
        assert window({"image": torch.full((1, 2, 2), -600.0)})["image"].allclose(torch.tensor(0.5))
        assert parser.get_parsed_content("body").threshold == -400
