"""Benchmark DICOM series loading: DicomSeriesReader vs SimpleITK (and MONAI's ITKReader), cached vs decoding epochs.

Writes seeded synthetic CT series (int16, realistic header clutter, shuffled file names) to a temporary folder,
then times, interleaving the methods and repeating to damp machine noise:

(a) ``LoadImaged(reader=DicomSeriesReader())`` followed by a light preprocessing chain
    (EnsureChannelFirstd, Orientationd("RAS"), ScaleIntensityRanged, Resized) to a tensor;
(b) SimpleITK ``ImageSeriesReader`` (``GetGDCMSeriesFileNames`` + ``Execute``) wrapped into the same MetaTensor
    (float32 array in MONAI's (x, y, z) layout, RAS affine from SimpleITK's direction/spacing/origin), followed by
    the SAME preprocessing chain; MONAI's ``ITKReader`` through ``LoadImaged`` is timed as well for reference;
(c) an epoch over a MONAI ``Dataset`` (decoding every time) vs a ``PersistentDataset`` epoch served from its disk
    cache and a ``CacheDataset`` epoch served from memory.

The Markdown table goes to ``docs/benchmarks.md`` (section ``bench_data``).

Usage::

    python scripts/bench_data.py --n_series 20 --slices 64 --size 256 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from monai.data import CacheDataset, Dataset, MetaTensor, PersistentDataset
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    LoadImaged,
    MapTransform,
    Orientationd,
    Resized,
    ScaleIntensityRanged,
)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from medtl_monai.io import DicomSeriesReader  # noqa: E402
from medtl_monai.synthetic.dicom import write_ct_series  # noqa: E402
from medtl_monai.utils import machine_description, update_benchmark_section  # noqa: E402


class SimpleITKSeriesLoadd(MapTransform):
    """Load a DICOM series folder with SimpleITK's ImageSeriesReader into the MetaTensor LoadImaged would give."""

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(d[key])))
            image = reader.Execute()
            direction = np.asarray(image.GetDirection()).reshape(3, 3)
            affine = np.eye(4)
            affine[:3, :3] = direction @ np.diag(image.GetSpacing())
            affine[:3, 3] = image.GetOrigin()
            affine[:2] *= -1  # LPS -> RAS, as MONAI's readers
            array = np.ascontiguousarray(sitk.GetArrayViewFromImage(image).transpose(2, 1, 0), dtype=np.float32)
            meta = {
                "affine": affine,
                "original_affine": affine.copy(),
                "original_channel_dim": float("nan"),
                "spatial_shape": np.asarray(array.shape),
                "space": "RAS",
                "filename_or_obj": str(d[key]),
            }
            d[key] = MetaTensor(torch.from_numpy(array), affine=torch.as_tensor(affine), meta=meta)
        return d


def preprocessing(size: tuple[int, int, int]) -> list:
    """The light preprocessing shared by every loader."""
    return [
        EnsureChannelFirstd("image"),
        Orientationd("image", axcodes="RAS"),
        ScaleIntensityRanged("image", a_min=-1000.0, a_max=1000.0, b_min=0.0, b_max=1.0, clip=True),
        Resized("image", spatial_size=size),
    ]


def epoch_seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def run_epoch(dataset) -> None:
    for i in range(len(dataset)):
        dataset[i]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n_series", "--n-series", type=int, default=20)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=256, help="rows = columns of each slice")
    parser.add_argument("--out_size", "--out-size", type=int, nargs=3, default=(128, 128, 64), help="Resized spatial_size (x y z)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds; the median is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benchmarks", default=str(REPO / "docs" / "benchmarks.md"), help="Markdown file to update")
    parser.add_argument("--no_benchmarks", "--no-benchmarks", action="store_true", help="print the table only")
    args = parser.parse_args()
    size = tuple(args.out_size)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        folders = []
        for k in range(args.n_series):
            folder = root / f"series_{k:03d}"
            write_ct_series(
                folder,
                n_slices=args.slices,
                rows=args.size,
                columns=args.size,
                slice_spacing=1.25,
                seed=args.seed + k,
                realistic_header=True,
                shuffle=True,
            )
            folders.append(folder)
        write_s = time.perf_counter() - t0
        data = [{"image": str(f)} for f in folders]
        mb = sum(p.stat().st_size for f in folders for p in f.iterdir()) / 2**20

        ours = Compose([LoadImaged("image", reader=DicomSeriesReader()), *preprocessing(size)])
        simpleitk = Compose([SimpleITKSeriesLoadd("image"), *preprocessing(size)])
        itkreader = Compose([LoadImaged("image", reader="ITKReader"), *preprocessing(size)])
        ours_read = LoadImaged("image", reader=DicomSeriesReader())
        simpleitk_read = SimpleITKSeriesLoadd("image")

        # the outputs agree before anything is timed
        a, b = ours(data[0])["image"], simpleitk(data[0])["image"]
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5), "ours and SimpleITK disagree"
        assert torch.allclose(a.affine, b.affine, atol=1e-4)
        itkreader(data[0])  # warm-up: ITK's lazy module loading

        methods = {
            "DicomSeriesReader + preprocessing": lambda: [ours(d) for d in data],
            "SimpleITK ImageSeriesReader + same preprocessing": lambda: [simpleitk(d) for d in data],
            "MONAI ITKReader + same preprocessing": lambda: [itkreader(d) for d in data],
            "DicomSeriesReader, read only (LoadImaged)": lambda: [ours_read(d) for d in data],
            "SimpleITK, read only (to float32 (x,y,z) MetaTensor)": lambda: [simpleitk_read(d) for d in data],
        }
        times: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.repeats):
            for name, run in methods.items():
                times[name].append(epoch_seconds(run))

        # (c) decoding vs cached epochs with the same chain
        decoding = Dataset(data, ours)
        persistent = PersistentDataset(data, ours, cache_dir=root / "cache")
        run_epoch(persistent)  # first epoch fills the cache
        cached = CacheDataset(data, ours, num_workers=0, progress=False)
        epochs = {
            "Dataset (decode every epoch)": decoding,
            "PersistentDataset (disk cache)": persistent,
            "CacheDataset (memory cache)": cached,
        }
        epoch_times: dict[str, list[float]] = {name: [] for name in epochs}
        for _ in range(args.repeats):
            for name, dataset in epochs.items():
                epoch_times[name].append(epoch_seconds(lambda ds=dataset: run_epoch(ds)))

    load_after = os.getloadavg()[0]
    all_times = {**times, **epoch_times}
    best = {name: min(v) for name, v in all_times.items()}
    median = {name: statistics.median(v) for name, v in all_times.items()}
    spread = max((max(v) - min(v)) / statistics.median(v) for v in times.values())
    n = args.n_series
    full_ref, read_ref = (
        "SimpleITK ImageSeriesReader + same preprocessing",
        "SimpleITK, read only (to float32 (x,y,z) MetaTensor)",
    )
    lines = [
        "## Data loading: DICOM series to tensor (`scripts/bench_data.py`)",
        "",
        f"Machine: {machine_description()}.",
        "",
        f"Command: `python scripts/bench_data.py --n_series {n} --slices {args.slices} --size {args.size} "
        f"--out_size {size[0]} {size[1]} {size[2]} --repeats {args.repeats} --seed {args.seed}`",
        "",
        f"Data: {n} synthetic CT series of {args.slices} slices of {args.size}x{args.size} int16 "
        f"({mb:.0f} MiB, written in {write_s:.1f} s), ~100 header elements (2.4 KB) per file incl. a sequence and "
        "private tags, shuffled file names and InstanceNumbers. Preprocessing after loading: EnsureChannelFirstd, "
        f"Orientationd(RAS), ScaleIntensityRanged(-1000..1000 to 0..1, clip), Resized({size}). SimpleITK's "
        "volume is wrapped into the same float32 (x, y, z) MetaTensor with its RAS affine before the same chain "
        "(outputs checked equal). One process, no workers; the methods are interleaved in each of the "
        f"{args.repeats} rounds, and the best and the median round are reported. 1-minute load average "
        f"{load_before:.1f} before and {load_after:.1f} after the run on these 2 cores (the machine is shared with "
        f"other jobs): the largest spread between rounds of one method was {100 * spread:.0f}% of its median, so "
        "differences below that are noise.",
        "",
        "| Method | s / epoch (best) | s / epoch (median) | volumes / s (best) | time vs SimpleITK (best) "
        "| time vs SimpleITK (median) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in times:
        ref = read_ref if "read only" in name else full_ref
        lines.append(
            f"| {name} | {best[name]:.2f} | {median[name]:.2f} | {n / best[name]:.1f} | "
            f"{best[name] / best[ref]:.2f}x | {median[name] / median[ref]:.2f}x |"
        )
    decode = "Dataset (decode every epoch)"
    lines += [
        "",
        "| Epoch over the same chain | s / epoch (best) | s / epoch (median) | speed-up vs decoding (median) |",
        "|---|---:|---:|---:|",
    ]
    for name in epoch_times:
        lines.append(
            f"| {name} | {best[name]:.3f} | {median[name]:.3f} | {median[decode] / max(median[name], 1e-6):.0f}x |"
        )
    ours = "DicomSeriesReader + preprocessing"
    ratio_best, ratio_median = best[ours] / best[full_ref], median[ours] / median[full_ref]
    speedup = median[decode] / median["PersistentDataset (disk cache)"]
    verdict = "met" if max(ratio_best, ratio_median) <= 1.2 else "MISSED"
    lines += [
        "",
        f"Targets: series to tensor within 1.2x of SimpleITK: {verdict} "
        f"({ratio_best:.2f}x best, {ratio_median:.2f}x median); cached epoch at least 10x faster than decoding: "
        f"{'met' if speedup >= 10 else 'MISSED'} ({speedup:.0f}x with the disk cache, PersistentDataset).",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_benchmarks:
        update_benchmark_section(args.benchmarks, "bench_data", text)
        print(f"\nwritten to {args.benchmarks}")


if __name__ == "__main__":
    main()
