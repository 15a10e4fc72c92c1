"""Which series to read from a folder (or study) that holds several: one rule for the DICOM series reader of the
bundles and the MONAI Deploy application, so that both classify the same series.

The rule, in order:

1. ``series_uid`` given: that series (an error naming the available series when it is absent), localizer or not.
2. A single series: that one.
3. ``strict``: an error listing the series (the caller must pass ``series_uid``).
4. Otherwise the series with the most slices (frames of multi-frame files count as slices), leaving out
   localizers (scouts, topograms: ``LOCALIZER`` in ``ImageType``) whenever another series exists; ties go to the
   smallest SeriesInstanceUID, so the choice never depends on file names or the order files are listed in.

Each choice among several series is logged on the ``medtl_monai.io`` logger with its reason and the full list.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

from .errors import DicomSeriesError

__all__ = ["LOCALIZER", "SeriesInfo", "choose_series"]

logger = logging.getLogger("medtl_monai.io")

#: the ImageType value (DICOM PS3.3 C.8.2.1.1.1, CT Image Type value 3) that marks a localizer / scout image.
LOCALIZER = "LOCALIZER"


def _frames(ds: Dataset) -> int:
    """NumberOfFrames of one file (1 when absent or invalid)."""
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _image_type(ds: Dataset) -> tuple[str, ...]:
    """The ImageType values of one file, upper-case (a single value is read as a one-value list)."""
    value = ds.get("ImageType", None)
    if value is None or value == "":
        return ()
    values = [value] if isinstance(value, (str, bytes)) else list(value)
    return tuple(str(v).strip().upper() for v in values if str(v).strip())


@dataclass(frozen=True)
class SeriesInfo:
    """What the selection rule knows about one series.

    Attributes:
        uid: SeriesInstanceUID (``""`` when the files have none).
        n_slices: number of slices (the frames of all its files).
        image_type: the ImageType values found in its files, upper-case, each once.
        modality: Modality.
        description: SeriesDescription.
    """

    uid: str
    n_slices: int
    image_type: tuple[str, ...] = ()
    modality: str = ""
    description: str = ""

    @classmethod
    def from_datasets(cls, uid: str, datasets: Iterable[Dataset]) -> SeriesInfo:
        """Describe a series from the datasets (headers are enough) of its files.

        Args:
            uid: the series' SeriesInstanceUID.
            datasets: one dataset per file of the series.

        Returns:
            The description; ``image_type`` joins the values of every file (a localizer frame anywhere counts).

        Raises:
            ValueError: no dataset.
        """
        datasets = list(datasets)
        if not datasets:
            raise ValueError(f"series {uid or '<no SeriesInstanceUID>'} has no file.")
        image_type = tuple(dict.fromkeys(v for ds in datasets for v in _image_type(ds)))
        first = datasets[0]
        return cls(
            uid=str(uid),
            n_slices=sum(_frames(ds) for ds in datasets),
            image_type=image_type,
            modality=str(first.get("Modality", "") or ""),
            description=str(first.get("SeriesDescription", "") or ""),
        )

    @property
    def is_localizer(self) -> bool:
        """Whether ImageType marks the series as a localizer (scout, topogram)."""
        return LOCALIZER in self.image_type

    def describe(self) -> str:
        """``<uid> (<n> slices, <modality>, '<description>'[, localizer])`` for log and error messages."""
        name = self.uid or "<no SeriesInstanceUID>"
        extra = ", localizer" if self.is_localizer else ""
        return f"{name} ({self.n_slices} slices, {self.modality or '?'}, '{self.description}'{extra})"


def _rank(info: SeriesInfo) -> tuple[int, str]:
    return -info.n_slices, info.uid


def choose_series(
    series: Sequence[SeriesInfo],
    where: str | os.PathLike,
    *,
    series_uid: str | None = None,
    strict: bool = False,
) -> SeriesInfo:
    """Choose the series to read (see the module docstring for the rule) and log which and why.

    Args:
        series: the image series found, at least one.
        where: the folder (or study) they come from, for messages.
        series_uid: SeriesInstanceUID to read; ``None`` lets the rule choose.
        strict: raise instead of choosing when there are several series and no ``series_uid``.

    Returns:
        The chosen series.

    Raises:
        DicomSeriesError: no series, ``series_uid`` not among them, or several series with ``strict``.
    """
    if not series:
        raise DicomSeriesError(where, "no image series to choose from")
    ranked = sorted(series, key=_rank)
    summary = "; ".join(info.describe() for info in ranked)
    if series_uid is not None:
        wanted = next((info for info in ranked if info.uid == series_uid), None)
        if wanted is None:
            raise DicomSeriesError(where, f"series {series_uid} not found among {len(ranked)} series: {summary}")
        logger.info("%s: reading series %s because series_uid was given (all: %s)", os.fspath(where),
                    wanted.describe(), summary)
        return wanted
    if len(ranked) == 1:
        return ranked[0]
    if strict:
        raise DicomSeriesError(where, f"mixes {len(ranked)} series ({summary}); pass series_uid to choose one")
    localizers = [info for info in ranked if info.is_localizer]
    candidates = [info for info in ranked if not info.is_localizer] or ranked
    chosen = candidates[0]
    tie = sum(info.n_slices == chosen.n_slices for info in candidates) > 1
    reason = "it has the most slices" + (" (tie broken by smallest UID)" if tie else "")
    if localizers and len(candidates) < len(ranked):
        skipped = ", ".join(info.uid or "<no SeriesInstanceUID>" for info in localizers)
        reason += f" among the non-localizer series (skipped localizer series by ImageType: {skipped})"
    elif localizers:
        reason += " (every series is a localizer)"
    logger.info("%s: %d series; reading %s because %s (all: %s)", os.fspath(where), len(ranked),
                chosen.describe(), reason, summary)
    return chosen
