"""CT and X-ray transforms: windows, crops, sizes, normalisation, seeded augmentation, bundle-config use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import Compose

from medtl_monai.transforms import (
    AIR_HU,
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


def chest_phantom(shape=(48, 40, 16)) -> tuple[np.ndarray, np.ndarray]:
    """The boolean ``(body, lungs)`` masks of :func:`chest_volume`, in its stored (LPS) array order."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    body = (x / 0.8) ** 2 + (y / 0.6) ** 2 <= 1
    lungs = np.zeros_like(body)
    for cx in (-0.4, 0.4):
        lungs |= ((x - cx) / 0.25) ** 2 + (y / 0.4) ** 2 <= 1
    lungs3 = np.repeat(lungs[..., None], shape[2], axis=2)
    lungs3[..., :2] = False
    return np.repeat(body[..., None], shape[2], axis=2), lungs3


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The slices of the smallest box holding every True voxel of ``mask``."""
    idx = np.argwhere(mask)
    return tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(idx.min(0), idx.max(0), strict=True))


def windowed(hu: torch.Tensor | np.ndarray, window) -> torch.Tensor:
    """``(hu - lower) / (upper - lower)`` clipped to [0, 1], computed here from the window's bounds."""
    lower, upper = resolve_window(window)
    return ((torch.as_tensor(hu, dtype=torch.float64) - lower) / (upper - lower)).clamp(0, 1)


def percentile_scaled(img: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """``img`` with its ``lower``/``upper`` percentiles mapped to 0/1, clipped (numpy's linear percentiles)."""
    lo, hi = np.percentile(img.astype(np.float64), [lower, upper])
    return np.clip((img - lo) / (hi - lo), 0, 1)


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

    def test_each_window_is_a_channel_of_clipped_scaled_hu(self):
        img = torch.linspace(-2000, 2000, 4 * 5 * 6).reshape(1, 4, 5, 6)
        out = HUWindows(windows=("lung", "mediastinum", "bone"))(img)
        assert out.shape == (3, 4, 5, 6)
        assert out.min() == 0 and out.max() == 1
        for c, window in enumerate(("lung", "mediastinum", "bone")):
            torch.testing.assert_close(out[c].double(), windowed(img[0], window), rtol=0, atol=1e-6)

    @pytest.mark.parametrize(("hu", "window", "expected"), [
        (-600.0, "lung", 0.5), (50.0, "mediastinum", 0.5), (400.0, "bone", 0.5),
        (-1350.0, "lung", 0.0), (150.0, "lung", 1.0), (-2000.0, "bone", 0.0), (3000.0, "mediastinum", 1.0),
        (-300.0, (-1000, 400), 0.5),
    ])
    def test_known_hu_maps_to_known_value(self, hu, window, expected):
        out = HUWindows(windows=[window])(torch.full((1, 2, 2, 2), hu))
        assert torch.allclose(out, torch.full_like(out, expected))

    def test_single_bare_pair_is_one_window(self):
        out = HUWindows(windows=(-1000, 400))(torch.zeros(1, 2, 2))
        assert out.shape == (1, 2, 2)
        torch.testing.assert_close(out, torch.full((1, 2, 2), 1000 / 1400), rtol=0, atol=1e-6)  # 0 HU in [-1000, 400]

    def test_multichannel_input_raises(self):
        with pytest.raises(ValueError, match="single-channel"):
            HUWindows()(torch.zeros(2, 3, 3))

    def test_dict_wrapper_windows_like_the_array_transform_and_keeps_metadata(self):
        vol = chest_volume()
        out = HUWindowsd("image", windows=("lung",))({"image": vol})["image"]
        assert isinstance(out, MetaTensor) and torch.equal(out.affine, vol.affine)
        torch.testing.assert_close(out.as_tensor()[0].double(), windowed(vol.as_tensor()[0], "lung"), rtol=0, atol=1e-6)


class TestCropMasks:
    def test_body_mask_is_tissue_only_and_spans_the_body_box(self):
        vol = chest_volume()
        body, lungs = chest_phantom()
        mask = BodyMask()(vol)
        assert mask.shape == vol.shape and mask.dtype == torch.bool
        assert not mask[0, :, -3].any() and mask[0, 24, 20].all()
        assert torch.equal(mask[1:], mask[:1].expand_as(mask[1:]))  # same mask on every channel
        selected = mask[0].numpy()
        assert not (selected & ~(body & ~lungs)).any()  # never air, lung or table
        assert bounding_box(selected) == bounding_box(body)  # what a crop keeps: exactly the body's box

    def test_body_mask_cuts_a_thin_bridge_to_the_table(self):
        vol = chest_volume()
        plain = BodyMask()(vol)[0].numpy()
        vol[0, 24, 30:38, :] = 40.0  # a one-voxel cable from the body to the table
        cable = np.zeros(vol.shape[1:], dtype=bool)
        cable[24, 30:38, :] = True
        mask = BodyMask()(vol)
        assert not mask[0, :, -3].any() and mask[0, 24, 20].all()
        assert BodyMask(opening=0)(vol)[0, :, -3].any()
        bridged = mask[0].numpy()
        outside_body = cable & ~chest_phantom()[0]
        assert np.array_equal(bridged & ~outside_body, plain)  # the body itself is unchanged by the cable
        assert not bridged[24, 34:].any()  # the cable is cut within two voxels of the body

    def test_lung_mask_is_the_air_inside_the_body(self):
        vol = chest_volume()
        vol[0, :, -1] = 200.0  # a second table slab: air between the slabs touches the sides only
        lungs = LungMask().lungs(vol)
        assert lungs.any() and not lungs[0, 0, :].any()  # outside air removed
        assert not lungs[:, -2].any()  # air between the table slabs removed
        assert lungs[..., -1].any()  # lungs cut at the top of the scan are kept
        assert (vol[0].numpy()[lungs] < -400).all()
        assert np.array_equal(lungs, chest_phantom()[1])  # exactly the two lungs, from the third slice up

    def test_lung_mask_falls_back_to_body_without_lungs(self):
        vol = torch.full((1, 8, 8, 4), -1000.0)
        vol[:, 2:6, 2:6] = 40.0
        assert torch.equal(LungMask()(vol), BodyMask()(vol))


def pls(stored: torch.Tensor | np.ndarray):
    """A volume stored like :func:`chest_volume` (LPS: axes towards the patient's left, posterior, superior) in the
    preprocessing's ``(AP, LR, SI)`` order: rows posterior-wards, columns towards the left, i.e. a transpose."""
    return stored.transpose(0, 1) if isinstance(stored, torch.Tensor) else stored.transpose(1, 0, 2)


class TestCTPreprocessing:
    KEEP_GRID = {"pixdim": None, "crop": None, "resize": "pad", "spatial_size": (40, 48, 16)}  # no resampling

    @pytest.mark.parametrize("crop", ["body", "lung", None])
    @pytest.mark.parametrize("resize", ["resize", "pad"])
    def test_each_channel_is_its_window_of_the_preprocessed_hu(self, crop, resize):
        kw = {"spatial_size": (32, 24, 8), "pixdim": (7.0, 7.0, 20.0), "crop": crop, "resize": resize}
        out = Compose(ct_preprocessing(**kw))({"image": chest_volume()})["image"]
        hu = Compose(ct_preprocessing(windows=None, **kw))({"image": chest_volume()})["image"]
        assert out.shape == (3, 32, 24, 8) and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
        for c, window in enumerate(("lung", "mediastinum", "bone")):  # windowing is the last step, after resizing
            torch.testing.assert_close(out[c].as_tensor().double(), windowed(hu[0].as_tensor(), window),
                                       rtol=0, atol=1e-6)

    def test_pad_mode_crops_the_centre_of_a_larger_volume(self):
        out = Compose(ct_preprocessing(spatial_size=(32, 24, 8), pixdim=None, crop=None, resize="pad",
                                       windows=["lung"]))({"image": chest_volume()})["image"]
        rows_first = pls(chest_volume()[0].as_tensor())  # (40, 48, 16)
        centre = rows_first[4:36, 12:36, 4:12]  # (40 - 32) / 2, (48 - 24) / 2, (16 - 8) / 2 voxels cut on each side
        torch.testing.assert_close(out[0].as_tensor().double(), windowed(centre, "lung"), rtol=0, atol=1e-6)

    def test_one_window_gives_one_channel_and_none_keeps_hu(self):
        one = Compose(ct_preprocessing(spatial_size=(16, 16, 8), windows=["lung"]))({"image": chest_volume()})
        assert one["image"].shape[0] == 1
        raw = Compose(ct_preprocessing(spatial_size=(16, 16, 8), windows=None))({"image": chest_volume()})
        assert raw["image"].min() < -500
        torch.testing.assert_close(one["image"][0].as_tensor().double(), windowed(raw["image"][0].as_tensor(), "lung"),
                                   rtol=0, atol=1e-6)
        kept = Compose(ct_preprocessing(windows=None, **self.KEEP_GRID))({"image": chest_volume()})["image"]
        assert kept.dtype == torch.float32
        assert torch.equal(kept[0].as_tensor(), pls(chest_volume()[0].as_tensor()))  # the HU values, untouched

    def test_orientation_is_pls(self):
        out = Compose(ct_preprocessing(spatial_size=(16, 16, 8), pixdim=None, crop=None))({"image": chest_volume()})
        affine = out["image"].affine.numpy()  # RAS world: rows go posterior (-y), columns left (-x), slices up (+z)
        assert affine[1, 0] < 0 and affine[0, 1] < 0 and affine[2, 2] > 0
        assert affine[0, 0] == affine[1, 1] == affine[2, 0] == affine[2, 1] == 0

    def test_orientation_moves_a_marker_voxel_to_its_pls_index(self):
        vol = chest_volume()
        vol[0, 30, 12, 9] = 3000.0  # stored with the LPS affine diag(-7, -7, 20): left index 30, posterior index 12
        out = Compose(ct_preprocessing(windows=None, **self.KEEP_GRID))({"image": vol})["image"]
        assert np.unravel_index(int(out[0].argmax()), out.shape[1:]) == (12, 30, 9)  # (row AP, column LR, slice)
        world = vol.affine.numpy() @ np.array([30, 12, 9, 1.0])
        np.testing.assert_allclose(out.affine.numpy() @ np.array([12, 30, 9, 1.0]), world)  # same point in space
        np.testing.assert_allclose(np.abs(out.affine.numpy()[:3, :3]).sum(0), (7.0, 7.0, 20.0))

    def test_spacing_moves_a_marker_voxel_to_its_resampled_index(self):
        vol = chest_volume()
        vol[0, 30, 12, 9] = 3000.0
        kw = {"pixdim": (3.5, 3.5, 10.0), "crop": None, "resize": "pad", "windows": None, "spatial_size": (80, 96, 32)}
        out = Compose(ct_preprocessing(**kw))({"image": vol})["image"]
        pls_index = np.array([12, 30, 9])
        predicted = tuple(int(v) for v in 2 * pls_index)  # half the spacing: twice the index from the same origin
        assert np.unravel_index(int(out[0].argmax()), out.shape[1:]) == predicted
        assert float(out[(0, *predicted)]) == pytest.approx(3000.0)  # a grid point of the input: not blurred
        world = vol.affine.numpy() @ np.array([30, 12, 9, 1.0])
        np.testing.assert_allclose(out.affine.numpy() @ np.array([*predicted, 1.0]), world, atol=1e-6)

    def test_body_crop_removes_air_and_table(self):
        kw = {"spatial_size": (40, 48, 16), "pixdim": None, "resize": "pad", "windows": None}
        full = Compose(ct_preprocessing(crop=None, **kw))({"image": chest_volume()})["image"]
        body = Compose(ct_preprocessing(crop="body", crop_margin=0, **kw))({"image": chest_volume()})["image"]
        # the crop pads back with air: more air, and no table row
        assert (body < -900).float().mean() > (full < -900).float().mean()
        assert (body > 150).sum() == 0 < (full > 150).sum()

    def test_body_crop_keeps_exactly_the_body_box_padded_with_air(self):
        kw = {"spatial_size": (40, 48, 16), "pixdim": None, "resize": "pad", "windows": None}
        out = Compose(ct_preprocessing(crop="body", crop_margin=0, **kw))({"image": chest_volume()})["image"]
        rows_first = pls(chest_volume()[0].numpy())
        box = bounding_box(pls(chest_phantom()[0]))
        kept = rows_first[box]
        pads = [((n - k) // 2, n - k - (n - k) // 2) for n, k in zip(out.shape[1:], kept.shape, strict=True)]
        np.testing.assert_array_equal(out[0].numpy(), np.pad(kept, pads, constant_values=AIR_HU))

    @pytest.mark.parametrize(("kw", "match"), [({"crop": "heart"}, "crop"), ({"resize": "zoom"}, "resize"),
                                               ({"spatial_size": (8, 8)}, "3D")])
    def test_bad_arguments_raise(self, kw, match):
        with pytest.raises(ValueError, match=match):
            ct_preprocessing(**kw)


class TestXrayPreprocessing:
    """Inputs are given as MONAI's readers give them, ``(C, column, row)``; outputs are ``(C, row, column)``."""

    def test_aspect_ratio_is_kept_before_padding(self):
        img = torch.zeros(1, 300, 300)
        img[0, 50:250, 100:200] = 1.0  # a rectangle of ones 200 pixels wide and 100 high, on a square
        pre = Compose(xray_preprocessing(size=150, normalize="none", intensity="minmax", channels=1))
        out = pre({"image": img})["image"][0]
        rows, cols = torch.nonzero(out > 0.5, as_tuple=True)
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert w / h == pytest.approx(2.0, rel=0.05)
        expected = torch.zeros(150, 150)
        expected[50:100, 25:125] = 1.0  # halved: the rectangle keeps its 1:2 sides exactly
        torch.testing.assert_close(out.as_tensor(), expected, rtol=0, atol=1e-6)

    def test_non_square_image_is_fitted_then_padded(self):
        img = torch.ones(1, 100, 200, 1)  # a one-slice "volume" as readers return it: 100 wide, 200 high
        img[0, 0, 0] = 0
        pre = Compose(xray_preprocessing(size=64, normalize="none", intensity="minmax", channels=1))
        out = pre({"image": img})["image"]
        assert out.shape == (1, 64, 64)
        assert torch.all(out[0, :, :16] == 0) and torch.all(out[0, :, -16:] == 0)  # padding left and right
        assert out[0, :, 20:44].mean() > 0.99  # image, longest side (the height) -> 64

    def test_fitted_image_is_area_averaged_and_padded_symmetrically(self):
        img = torch.rand(1, 200, 100, 1, generator=torch.Generator().manual_seed(2))  # 200 wide, 100 high
        out = Compose(xray_preprocessing(size=50, normalize="none", intensity="minmax", channels=1))({"image": img})
        out = out["image"][0].as_tensor()
        scaled = ((img[0, ..., 0] - img.min()) / (img.max() - img.min())).T  # (rows, columns)
        fitted = scaled.reshape(25, 4, 50, 4).mean((1, 3))  # longest side 200 -> 50: means of 4 x 4 blocks
        before = (50 - 25) // 2
        after = 50 - 25 - before  # 12 rows above, 13 below
        assert out.shape == (50, 50)
        assert torch.all(out[:before] == 0) and torch.all(out[before + 25 :] == 0) and after == 13
        torch.testing.assert_close(out[before : before + 25], fitted, rtol=0, atol=1e-6)

    @pytest.mark.parametrize("channels", [3, 1])
    def test_imagenet_normalisation(self, channels):
        img = torch.rand(1, 80, 80, generator=torch.Generator().manual_seed(0))
        out = Compose(xray_preprocessing(size=80, intensity="minmax", channels=channels))({"image": img})["image"]
        assert out.shape == (channels, 80, 80)
        scaled = ((img[0] - img.min()) / (img.max() - img.min())).T
        if channels == 3:
            for c in range(3):  # undo the normalisation: every channel is the same [0, 1] image
                restored = out[c] * IMAGENET_STD[c] + IMAGENET_MEAN[c]
                assert restored.min() == pytest.approx(0.0, abs=1e-5)
                assert restored.max() == pytest.approx(1.0, abs=1e-5)
            expected = [(0.5 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
            assert out.mean((1, 2)).tolist() == pytest.approx(expected, abs=0.05)
            stats = list(zip(IMAGENET_MEAN, IMAGENET_STD, strict=True))
        else:
            stats = [(sum(IMAGENET_MEAN) / 3, sum(IMAGENET_STD) / 3)]  # one channel: the mean statistics
        for c, (mean, std) in enumerate(stats):
            torch.testing.assert_close(out[c].as_tensor(), (scaled - mean) / std, rtol=0, atol=1e-6)

    def test_rgb_input_becomes_gray_then_three_channels(self):
        img = torch.rand(3, 40, 40)
        out = Compose(xray_preprocessing(size=32, normalize="none"))({"image": img})["image"]
        assert out.shape == (3, 32, 32) and torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])

    def test_rgb_input_is_averaged_to_gray_then_repeated(self):
        img = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(3))
        out = Compose(xray_preprocessing(size=40, normalize="none"))({"image": img})["image"]
        gray = percentile_scaled(img.numpy().astype(np.float64).mean(0)).T
        np.testing.assert_allclose(out.numpy(), np.broadcast_to(gray, (3, 40, 40)), rtol=0, atol=1e-6)

    def test_percentile_scaling_clips_outliers(self):
        img = torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(1))
        img[0, 0, 0] = 1000.0  # burnt-in marker
        out = Compose(xray_preprocessing(size=64, normalize="none", channels=1))({"image": img})["image"]
        assert out.min() == 0 and out.max() == 1 and out.mean() == pytest.approx(0.5, abs=0.05)
        np.testing.assert_allclose(out.numpy(), percentile_scaled(img.numpy()).transpose(0, 2, 1), rtol=0, atol=1e-6)
        assert float(out[0, 0, 0]) == 1.0  # the marker is clipped to white, not stretching the scale


class TestSmallTransforms:
    @pytest.mark.parametrize(("shape", "expected"), [((1, 5, 6), (1, 5, 6)), ((1, 5, 6, 1), (1, 5, 6)),
                                                     ((2, 1, 5, 6), (2, 5, 6)), ((1, 1, 1, 1), (1, 1, 1))])
    def test_to2d_drops_singleton_dims_and_keeps_every_value(self, shape, expected):
        img = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        out = To2D()(img)
        assert out.shape == expected
        assert torch.equal(out.reshape(-1), img.reshape(-1))

    def test_to2d_refuses_a_volume(self):
        with pytest.raises(ValueError, match="2D"):
            To2D()(torch.zeros(1, 4, 5, 6))

    def test_adapt_channels(self):
        assert AdaptChannels(channels=3)(torch.zeros(1, 4, 4)).shape == (3, 4, 4)
        assert AdaptChannels(channels=1)(torch.ones(3, 4, 4)).shape == (1, 4, 4)
        with pytest.raises(ValueError):
            AdaptChannels(channels=3)(torch.zeros(2, 4, 4))

    def test_adapt_channels_repeats_gray_and_averages_colour(self):
        gray = torch.rand(1, 4, 5, generator=torch.Generator().manual_seed(0))
        assert torch.equal(AdaptChannels(channels=3)(gray), gray.expand(3, 4, 5))
        colour = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(AdaptChannels(channels=1)(colour), (colour[0:1] + colour[1:2] + colour[2:3]) / 3,
                                   rtol=0, atol=1e-6)
        assert AdaptChannels(channels=3)(colour) is colour  # already right: untouched


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
        assert len(flips) == 1 and flips[0].flipper.spatial_axis == 1  # (C, H, W): the columns run left-right

    def test_ct_rotation_without_tilt_stays_in_the_axial_plane(self):
        img = torch.ones(1, 24, 24, 8) * torch.arange(1, 9).float()  # each axial slice has its own value
        aug = ct_train_augmentation(prob=1.0, rotate_deg=10, tilt_deg=0, scale=0, intensity_shift=0, noise_std=0,
                                    air=0.0)
        out = self.run(aug, img, 0)
        assert not torch.equal(out, img)  # rotated: corners padded with 0
        for k in range(8):  # no mixing across slices: interiors keep the slice's value, only edges blend with 0
            values = out[0, ..., k][out[0, ..., k] > 0]
            assert values.max() <= k + 1 + 1e-4 and values.median() == pytest.approx(k + 1, abs=1e-4)

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_ct_intensity_shift_is_one_offset_within_the_bound_for_all_channels(self, seed):
        img = torch.rand(3, 24, 24, 8, generator=torch.Generator().manual_seed(0))
        aug = ct_train_augmentation(prob=1.0, rotate_deg=0, tilt_deg=0, scale=0, intensity_shift=0.03, noise_std=0)
        shift = torch.as_tensor(self.run(aug, img, seed)) - img
        offset = float(shift.mean())
        torch.testing.assert_close(shift, torch.full_like(img, offset), rtol=0, atol=1e-6)
        assert 0 < abs(offset) <= 0.03


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
        pre = Compose(parser.get_parsed_content("ct_pre"))({"image": chest_volume()})["image"]
        direct = Compose(ct_preprocessing(spatial_size=(16, 16, 8), pixdim=(7.0, 7.0, 20.0), windows=["lung", "bone"]))
        assert torch.equal(pre, direct({"image": chest_volume()})["image"])  # the config builds the same chain
        window = parser.get_parsed_content("window")
        assert window({"image": torch.full((1, 2, 2), -600.0)})["image"].allclose(torch.tensor(0.5))
        assert parser.get_parsed_content("body").threshold == -400
