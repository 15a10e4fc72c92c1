"""Flag a loaded case that is far outside the training data (out-of-distribution flags for inference).

:class:`FingerprintFlags` compares a case's raw image (HU for CT, with its affine and metadata, right after
``LoadImaged``) with the training data's fingerprint (``data_fingerprint.json``, written beside ``model.pt`` by the
data check at the start of training) and names what is far outside it (see
:func:`~medtl_monai.data.fingerprint.case_flags`): ``dims``, ``modality``, ``spacing``, ``size``, ``intensity``.
:class:`FingerprintFlagsd` puts them, ``;``-joined, into the item (a column of ``predictions.csv``) and logs a
warning naming the file, so that a head CT given to a chest model does not pass as a confident "negative".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform

from ..data.fingerprint import case_flags, load_fingerprint

__all__ = ["FingerprintFlags", "FingerprintFlagsd"]

logger = logging.getLogger("medtl_monai.transforms")


class FingerprintFlags(Transform):
    """Name what puts a loaded, channel-first image far outside a training data fingerprint.

    Args:
        fingerprint: the fingerprint: a ``data_fingerprint.json`` path or its dictionary. A path that does not exist
            (a model trained before fingerprints were written) turns the check off: every case gets no flag.
        modality: the modality of images whose metadata names none (DICOM images carry ``Modality``).

    Raises:
        ValueError: the file or dictionary is not a fingerprint.
    """

    def __init__(self, fingerprint: str | os.PathLike | Mapping[str, Any] | None, *,
                 modality: str | None = None) -> None:
        self.fingerprint = load_fingerprint(fingerprint)
        self.modality = modality
        if self.fingerprint is None:
            logger.info("no data fingerprint at %s: out-of-distribution flags are off", fingerprint)

    def __call__(self, img: NdarrayOrTensor) -> list[str]:
        """Return the flags of ``img`` (raw values, channel first, MetaTensor with its affine); empty when it looks
        like the training data or when there is no fingerprint."""
        if self.fingerprint is None:
            return []
        return case_flags(img, self.fingerprint, modality=self.modality)


class FingerprintFlagsd(MapTransform):
    """Dictionary wrapper of :class:`FingerprintFlags`: store the flags as one ``;``-joined string and log them.

    Insert it right after loading (before any resampling or intensity transform), e.g. through
    ``Preprocessing(..., after_load=[...])``::

        {"_target_": "medtl_monai.transforms.FingerprintFlagsd", "keys": "image",
         "fingerprint": "$os.path.join(@ckpt_dir, 'data_fingerprint.json')"}

    Args:
        keys: keys of the images to check (their flags are joined in key order, without repeats).
        fingerprint: see :class:`FingerprintFlags`.
        flag_key: the item key that receives the flags (``""`` when none).
        modality: see :class:`FingerprintFlags`.
        allow_missing_keys: do not raise if a key is absent.
    """

    def __init__(self, keys: KeysCollection, *, fingerprint: str | os.PathLike | Mapping[str, Any] | None,
                 flag_key: str = "flags", modality: str | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.flagger = FingerprintFlags(fingerprint, modality=modality)
        self.flag_key = flag_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, Any]:
        d = dict(data)
        flags: list[str] = []
        for key in self.key_iterator(d):
            found = self.flagger(d[key])
            flags += [f for f in found if f not in flags]
            if found:
                meta = getattr(d[key], "meta", None) or {}
                name = meta.get("filename_or_obj") or d.get("id") or key
                logger.warning("%s: far outside the training data (%s); treat its prediction with caution",
                               name, ", ".join(found))
        d[self.flag_key] = ";".join(flags)
        return d
