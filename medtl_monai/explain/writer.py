"""Write CAMs per case: NIfTI with the input's affine (overlays in 3D Slicer / ITK-SNAP) and PNG pictures.

:class:`CAMWriter` is an Ignite handler for a MONAI ``SupervisedEvaluator`` (``configs/explain.json``): after each
iteration it explains the batch the evaluator has just run and writes, under ``output_dir``::

    <case>_cam.nii.gz   the fused CAM on the preprocessed image grid, with that image's affine
    <case>_cam.png      2D: image and overlay; 3D: axial, coronal and sagittal slices through the CAM peak
    cams.csv            id, explained class, its probability, predicted class, peak position, file names

With ``multi_label=True`` (a model with one sigmoid per class, ``configs/multi_label.json``) each case gets one map
per explained class, ``<case>_cam_<class>.nii.gz`` / ``.png``, and one row per map in ``cams.csv``: the explained
classes are every class whose probability is at least ``threshold`` (the findings the model reports), or the most
probable class when none is, so that every case is explained; a given ``class_idx`` explains that class only.

Cases are named by their datalist / folder id (made file-name safe), never by anything read from image headers.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor, decollate_batch
from monai.data.utils import orientation_ras_lps

from ..utils import as_bool
from .cam import GradientCAM
from .overlay import cam_figure, peak_index, save_figure

__all__ = ["CAMWriter", "case_filename", "nifti_affine", "save_cam_nifti"]

logger = logging.getLogger("medtl_monai.explain")


def case_filename(case_id: str) -> str:
    """A file-name-safe version of a case id (``sub-1/CT`` -> ``sub-1_CT``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(case_id)).strip("._")
    return name or "case"


def nifti_affine(image: torch.Tensor | np.ndarray, spatial_dims: int | None = None) -> np.ndarray:
    """The 4x4 RAS affine of a preprocessed image, as NIfTI wants it.

    Takes ``image.affine`` of a MONAI ``MetaTensor`` (identity for plain arrays), converts it from LPS when the
    meta data says so, and embeds a 2D (3x3) affine into 4x4.

    Args:
        image: the preprocessed image ``(C, *spatial)``.
        spatial_dims: spatial dimensions (default: ``image.ndim - 1``).

    Returns:
        A float64 ``(4, 4)`` array.
    """
    dims = spatial_dims or image.ndim - 1
    if not isinstance(image, MetaTensor):
        return np.eye(4)
    affine = np.asarray(image.affine.detach().cpu().numpy(), dtype=np.float64)
    if str(image.meta.get("space", "RAS")).upper() == "LPS":
        affine = orientation_ras_lps(affine)
    if affine.shape == (4, 4):
        return affine
    out = np.eye(4)
    out[:dims, :dims] = affine[:dims, :dims]
    out[:dims, 3] = affine[:dims, dims]
    return out


def save_cam_nifti(cam: torch.Tensor | np.ndarray, affine: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a ``(*spatial)`` map as float32 NIfTI with ``affine`` as both qform and sform (scanner space).

    Returns:
        The path written.
    """
    data = cam.detach().cpu().float().numpy() if isinstance(cam, torch.Tensor) else np.asarray(cam, np.float32)
    img = nib.Nifti1Image(np.ascontiguousarray(data.astype(np.float32)), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def _as_items(batch: object) -> list[dict]:
    if isinstance(batch, dict):
        return list(decollate_batch(batch))
    return list(batch) if isinstance(batch, (list, tuple)) else []


class CAMWriter:
    """Ignite handler writing each evaluated case's CAM as NIfTI (input affine) and PNG, plus an index CSV.

    Args:
        cam: a :class:`GradientCAM` (``LayerCAM`` / ``GradCAM``) on the evaluator's network.
        output_dir: folder for the files (e.g. ``<bundle>/eval/cam``).
        class_names: class names in index order (for the index CSV).
        class_idx: the class to explain, ``None`` for each case's predicted class.
        image_key: key of the preprocessed image in the batch.
        id_key: key of the case id (missing ids fall back to ``case00000``...).
        nifti: write NIfTI maps.
        png: write PNG pictures.
        channel: image channel shown in the PNG.
        index_name: name of the index CSV (``None``: none).
        multi_label: the network has one sigmoid output per class: probabilities are sigmoids and each case gets a
            map per class at or above ``threshold`` (see the module docstring).
        threshold: multi-label: the probability from which a class is explained (and predicted).
    """

    def __init__(
        self,
        cam: GradientCAM,
        output_dir: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        class_idx: int | None = None,
        image_key: str = "image",
        id_key: str = "id",
        nifti: bool | str = True,
        png: bool | str = True,
        channel: int = 0,
        index_name: str | None = "cams.csv",
        multi_label: bool | str = False,
        threshold: float = 0.5,
    ) -> None:
        self.cam, self.output_dir = cam, Path(output_dir)
        self.class_names = [str(c) for c in class_names] if class_names is not None else None
        self.class_idx = None if class_idx is None else int(class_idx)
        self.image_key, self.id_key = image_key, id_key
        self.nifti, self.png = as_bool(nifti, "nifti"), as_bool(png, "png")
        self.channel, self.index_name = int(channel), index_name
        self.multi_label, self.threshold = as_bool(multi_label, "multi_label"), float(threshold)
        self.rows: list[dict] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write_index)

    def _reset(self, engine: Engine) -> None:
        self.rows = []

    def _name(self, index: int) -> str:
        return self.class_names[index] if self.class_names and index < len(self.class_names) else str(index)

    def __call__(self, engine: Engine) -> None:
        items = _as_items(engine.state.batch)
        if not items:
            return
        images = [item[self.image_key] for item in items]
        device = next(self.cam.nn_module.parameters()).device
        x = torch.stack([im.as_tensor() if isinstance(im, MetaTensor) else torch.as_tensor(im) for im in images]).to(device)
        if self.multi_label:
            self._explain_classes(items, images, x)
            return
        result = self.cam.compute(x, self.class_idx)
        probs = torch.softmax(result.logits.float(), 1).cpu()
        for i, (item, image) in enumerate(zip(items, images)):
            case_id = str(item.get(self.id_key) or f"case{len(self.rows):05d}")
            self.rows.append(self.write_case(case_id, image, result.cam[i, 0], int(result.class_idx[i]), probs[i]))

    def explained_classes(self, probs: torch.Tensor) -> list[int]:
        """Multi-label: the classes explained for one case's ``(K,)`` sigmoid probabilities (``class_idx`` if given,
        else every class at or above ``threshold``, else the most probable one)."""
        if self.class_idx is not None:
            return [self.class_idx]
        present = [k for k, p in enumerate(probs.tolist()) if p >= self.threshold]
        return present or [int(probs.argmax())]

    def _explain_classes(self, items: list[dict], images: list, x: torch.Tensor) -> None:
        """Multi-label: one backward pass per class any case of the batch explains, a map per (case, class)."""
        model = self.cam.nn_module
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                probs = torch.sigmoid(model(x).float()).cpu()
        finally:
            model.train(was_training)
        wanted = [self.explained_classes(p) for p in probs]
        maps = {k: self.cam.compute(x, k).cam for k in sorted({k for ks in wanted for k in ks})}
        for i, (item, image) in enumerate(zip(items, images)):
            case_id = str(item.get(self.id_key) or f"case{len(self.rows):05d}")
            for k in wanted[i]:
                self.rows.append(self.write_case(case_id, image, maps[k][i, 0], k, probs[i]))

    def write_case(self, case_id: str, image: torch.Tensor, cam: torch.Tensor, class_index: int, probs: torch.Tensor) -> dict:
        """Write one case's files.

        Args:
            case_id: the datalist / folder id.
            image: its preprocessed image ``(C, *spatial)`` (a ``MetaTensor`` carries the affine).
            cam: its map ``(*spatial)``.
            class_index: the explained class.
            probs: its class probabilities (multi-label: per-class sigmoids).

        Returns:
            The case's row of the index CSV.
        """
        stem = case_filename(case_id)
        if self.multi_label:  # one map per class: the class in the file names; every class at the threshold predicted
            stem = f"{stem}_cam_{case_filename(self._name(class_index))}"
            prediction = ";".join(self._name(k) for k, p in enumerate(probs.tolist()) if p >= self.threshold)
        else:
            stem, prediction = f"{stem}_cam", self._name(int(probs.argmax()))
        affine = nifti_affine(image)
        row = {
            "id": case_id,
            "explained_class": self._name(class_index),
            "probability": f"{float(probs[class_index]):.6f}",
            "prediction": prediction,
            "peak": " ".join(str(i) for i in peak_index(cam)),
            "nifti": "",
            "png": "",
        }
        if self.nifti:
            row["nifti"] = save_cam_nifti(cam, affine, self.output_dir / f"{stem}.nii.gz").name
        if self.png:
            save_figure(cam_figure(image, cam, affine=affine, channel=self.channel), self.output_dir / f"{stem}.png")
            row["png"] = f"{stem}.png"
        return row

    def _write_index(self, engine: Engine) -> None:
        if not self.index_name or not self.rows:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / self.index_name
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        logger.info("wrote CAMs of %d cases to %s", len(self.rows), self.output_dir)
