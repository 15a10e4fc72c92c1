"""A MONAI Deploy series selector that reads the series the bundle's own DICOM reader would read.

MONAI Deploy's ``DICOMSeriesSelectorOperator`` takes the first series that matches its rules, in the order the files
were listed: in a head-CT folder with a 6-slice second series it may classify that one while the bundle reads the
108-slice series. This operator keeps the SDK's rule matching (e.g. ``Modality`` = CT) and, among each study's
matched series, chooses with :func:`medtl_monai.io.series_selection.choose_series`, the function the bundle's
``DicomSeriesReader`` calls: the requested ``SeriesInstanceUID``, else the series with most slices that is not a
localizer (``ImageType``), ties to the smallest UID; the choice and its reason are logged (``medtl_monai.io``).
"""

from __future__ import annotations

import logging
from typing import Any

from monai.deploy.core import Fragment
from monai.deploy.core.domain.dicom_series_selection import StudySelectedSeries
from monai.deploy.operators import DICOMSeriesSelectorOperator

from medtl_monai.io.series_selection import SeriesInfo, choose_series

__all__ = ["BundleSeriesSelectorOperator"]


class BundleSeriesSelectorOperator(DICOMSeriesSelectorOperator):
    """Select one series per study: the SDK's rules say which series qualify, the bundle's rule picks among them.

    Named input and output: as ``DICOMSeriesSelectorOperator`` (``dicom_study_list`` in,
    ``study_selected_series_list`` out, one selected series per study that has a match).

    Args:
        fragment: the application.
        rules: JSON selection rules (see ``DICOMSeriesSelectorOperator``); every matching series is a candidate.
        series_uid: SeriesInstanceUID to read (the reader's ``series_uid``); ``None`` lets the rule choose.
    """

    def __init__(
        self, fragment: Fragment, *args: Any, rules: str, series_uid: str | None = None, **kwargs: Any
    ) -> None:
        self.series_uid = series_uid or None
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, rules=rules, all_matched=True, sort_by_sop_instance_count=True, **kwargs)

    def filter(self, selection_rules, dicom_study_list, all_matched: bool = True,
               sort_by_sop_instance_count: bool = True) -> list[StudySelectedSeries]:
        """Every series that matches the rules, then the bundle's choice among them, per study.

        Raises:
            DicomSeriesError: ``series_uid`` is not among a study's matching series.
        """
        chosen_per_study = []
        for matched in super().filter(selection_rules, dicom_study_list, True, sort_by_sop_instance_count):
            candidates = {}  # SeriesInstanceUID -> its first SelectedSeries (a series may match several selections)
            for selected in matched.selected_series:
                candidates.setdefault(str(selected.series.SeriesInstanceUID), selected)
            infos = [SeriesInfo.from_datasets(uid, (i.get_native_sop_instance() for i in s.series.get_sop_instances()))
                     for uid, s in candidates.items()]
            chosen = choose_series(infos, f"study {matched.study.StudyInstanceUID}", series_uid=self.series_uid)
            result = StudySelectedSeries(matched.study)
            result.add_selected_series(candidates[chosen.uid])
            chosen_per_study.append(result)
            self._logger.info("study %s: selected series %s (%s)", matched.study.StudyInstanceUID, chosen.uid,
                              candidates[chosen.uid].selection_name)
        return chosen_per_study
