"""Batch inference that finishes: unusable cases are set aside, with their reason, instead of ending the run.

MONAI's ``Dataset`` re-raises any transform failure, and PyTorch's ``DataLoader`` passes it on, so one truncated
series ends a batch inference over a thousand. Here a case is set aside in three steps:

- :class:`SkipBadCasesDataset` (a MONAI ``Dataset``) turns a case whose loading or preprocessing raises a
  :class:`~medtl_monai.io.BadCaseError` into a small *skip record* (index, id, image, ``"<path>: <problem>"``);
- :func:`skip_bad_collate` collates the good items with MONAI's ``list_data_collate`` and puts the records of the
  batch aside under :data:`SKIPPED_KEY`;
- :class:`SkippingDataLoader` (a MONAI ``DataLoader``) takes the records out of each batch in the main process, logs
  them, keeps them in :attr:`SkippingDataLoader.skipped` for the run, and never yields a batch without a good case.

:class:`~medtl_monai.evaluation.PredictionWriter` lists the skipped cases of its engine's data loader as rows with
``status`` ``skipped``. In a bundle config::

    "dataset": {"_target_": "medtl_monai.data.SkipBadCasesDataset", "data": "@datalist", "transform": "@preprocessing"},
    "dataloader": {"_target_": "medtl_monai.data.SkippingDataLoader", "dataset": "@dataset", "batch_size": 4}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from monai.data import DataLoader, Dataset
from monai.data.utils import list_data_collate

from ..io import BadCaseError, find_bad_case_error

__all__ = ["CASE_INDEX_KEY", "SKIPPED_KEY", "SkipBadCasesDataset", "SkippingDataLoader", "skip_bad_collate"]

logger = logging.getLogger("medtl_monai.data")

#: Key of a skip record in place of an item, and of the list of a batch's skip records after collation.
SKIPPED_KEY = "skipped_cases"

#: Key :class:`SkipBadCasesDataset` adds to every good item: its index in the data, to list rows in data order.
CASE_INDEX_KEY = "case_index"


def _case_name(item: Any, image_key: str, index: int) -> tuple[str, str]:
    """The id and image path of a data item, for a skip record (the file name when there is no id)."""
    image = item.get(image_key) if isinstance(item, Mapping) else None
    image = os.fspath(image) if isinstance(image, (str, os.PathLike)) else ""
    case_id = item.get("id") if isinstance(item, Mapping) else None
    if case_id is None:
        case_id = os.path.basename(image.rstrip("/")) if image else f"case{index:05d}"
    return str(case_id), image


class SkipBadCasesDataset(Dataset):
    """A MONAI ``Dataset`` that returns a skip record, instead of raising, for a case it cannot load or preprocess.

    A skip record is ``{SKIPPED_KEY: {"index": i, "id": ..., "image": ..., "error": "<path>: <problem>"}}``; good
    items are returned as the transform made them, with :data:`CASE_INDEX_KEY` added. Use it with
    :class:`SkippingDataLoader` (or :func:`skip_bad_collate`), which sets the records aside.

    Args:
        data: the items (dictionaries with at least ``image_key``).
        transform: the loading and preprocessing transforms.
        image_key: key of the image path, named in skip records.
        skip_unexpected: also skip a case on an error that is not a :class:`~medtl_monai.io.BadCaseError` (a MONAI
            reader's or transform's own error), naming the case's image and logging the traceback; False lets such
            errors end the run, as a bug should in a test.
    """

    def __init__(
        self,
        data: Sequence,
        transform: Sequence[Callable] | Callable | None = None,
        *,
        image_key: str = "image",
        skip_unexpected: bool = True,
    ) -> None:
        super().__init__(data, transform)
        self.image_key = image_key
        self.skip_unexpected = skip_unexpected

    def _transform(self, index: int) -> Any:
        try:
            item = super()._transform(index)
        except Exception as error:
            record = self._record(index, error)
            if record is None:
                raise
            return {SKIPPED_KEY: record}
        return {**item, CASE_INDEX_KEY: index} if isinstance(item, Mapping) else item

    def _record(self, index: int, error: Exception) -> dict[str, Any] | None:
        """The skip record of case ``index`` that failed with ``error``; None when it may not be skipped."""
        case_id, image = _case_name(self.data[index], self.image_key, index)
        bad = find_bad_case_error(error)
        if bad is None:
            if not self.skip_unexpected:
                return None
            root = error
            while root.__cause__ is not None:  # MONAI wraps transform errors: report the original one
                root = root.__cause__
            bad = BadCaseError(image or case_id, f"cannot be preprocessed: {type(root).__name__}: {root}")
            logger.error("case %s: unexpected error while preprocessing %s", case_id, image, exc_info=error)
        return {"index": index, "id": case_id, "image": image, "error": str(bad)}


def is_skip_record(item: Any) -> bool:
    """Whether ``item`` is a skip record of :class:`SkipBadCasesDataset`."""
    return isinstance(item, Mapping) and SKIPPED_KEY in item and len(item) == 1


def skip_bad_collate(batch: Sequence[Any]) -> dict[str, Any]:
    """Collate the good items of ``batch`` with MONAI's ``list_data_collate``; put the skip records aside.

    Args:
        batch: items and skip records from :class:`SkipBadCasesDataset`.

    Returns:
        the collated good items (an empty dictionary when there is none), with the batch's skip records as a list
        under :data:`SKIPPED_KEY`.
    """
    good = [item for item in batch if not is_skip_record(item)]
    collated = list_data_collate(good) if good else {}
    if not isinstance(collated, dict):
        raise TypeError(f"skip_bad_collate needs dictionary items, got {type(good[0]).__name__}")
    collated[SKIPPED_KEY] = [item[SKIPPED_KEY] for item in batch if is_skip_record(item)]
    return collated


class SkippingDataLoader(DataLoader):
    """A MONAI ``DataLoader`` over a :class:`SkipBadCasesDataset` that sets unusable cases aside.

    Each batch's skip records are taken out in the main process (so it works with worker processes), logged as
    warnings with their reason, and kept in :attr:`skipped` (cleared when an iteration starts); a batch whose cases
    were all skipped is not yielded. The number of batches is therefore unknown until the end: ``len()`` raises
    ``TypeError`` as for an iterable dataset, and MONAI/ignite engines run to the end of the data (given a length,
    ignite would restart the data to make up for the skipped batches).

    Args:
        dataset: the dataset (a :class:`SkipBadCasesDataset`).
        num_workers: worker processes.
        kwargs: other ``DataLoader`` arguments; ``collate_fn`` defaults to :func:`skip_bad_collate`.

    Attributes:
        skipped: the skip records of the current or last iteration, in the order met.
    """

    def __init__(self, dataset: Dataset, num_workers: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("collate_fn", skip_bad_collate)
        super().__init__(dataset, num_workers=num_workers, **kwargs)
        self.skipped: list[dict[str, Any]] = []

    def __iter__(self) -> Iterator[Any]:
        self.skipped = []
        for batch in super().__iter__():
            records = batch.pop(SKIPPED_KEY, []) if isinstance(batch, dict) else []
            for record in records:
                logger.warning("skipping case %s: %s", record["id"], record["error"])
            self.skipped.extend(records)
            if not isinstance(batch, dict) or batch:
                yield batch

    def __len__(self) -> int:
        raise TypeError("the number of batches of a SkippingDataLoader is known only once its bad cases are skipped")
