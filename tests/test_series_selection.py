"""The series-selection rule that the DICOM series reader and the MONAI Deploy app share: most slices, localizers
left out by ImageType, a requested SeriesInstanceUID honoured, and a log line that says which and why."""

from __future__ import annotations

import logging

import pytest
from pydicom.dataset import Dataset

from medtl_monai.io import DicomSeriesError, DicomSeriesReader
from medtl_monai.io.series_selection import SeriesInfo, choose_series
from medtl_monai.synthetic.dicom import write_ct_series

AXIAL = ["ORIGINAL", "PRIMARY", "AXIAL"]
SCOUT = ["ORIGINAL", "PRIMARY", "LOCALIZER"]


def header(image_type=AXIAL, frames: int | None = None, modality: str = "CT", description: str = "") -> Dataset:
    ds = Dataset()
    ds.Modality, ds.SeriesDescription = modality, description
    if image_type is not None:
        ds.ImageType = image_type
    if frames is not None:
        ds.NumberOfFrames = frames
    return ds


def series(uid: str, n: int, image_type=AXIAL, description: str = "") -> SeriesInfo:
    return SeriesInfo.from_datasets(uid, [header(image_type, description=description) for _ in range(n)])


def test_series_info_counts_frames_and_reads_image_type():
    info = SeriesInfo.from_datasets("1.2.3", [header(frames=5), header(), header(["DERIVED", "SECONDARY"])])
    assert info.n_slices == 7
    assert info.image_type == ("ORIGINAL", "PRIMARY", "AXIAL", "DERIVED", "SECONDARY")
    assert not info.is_localizer and info.modality == "CT"
    assert SeriesInfo.from_datasets("1", [header("LOCALIZER")]).is_localizer  # a single value
    assert SeriesInfo.from_datasets("1", [header(None)]).image_type == ()
    with pytest.raises(ValueError):
        SeriesInfo.from_datasets("1", [])


def test_the_series_with_most_slices_wins_whatever_the_order_and_the_log_says_why(caplog):
    short, long = series("1.9", 6, description="short"), series("1.10", 108, description="head")
    with caplog.at_level(logging.INFO, logger="medtl_monai.io"):
        assert choose_series([short, long], "/study").uid == "1.10"
        assert choose_series([long, short], "/study").uid == "1.10"
    assert "/study: 2 series; reading 1.10 (108 slices, CT, 'head')" in caplog.text
    assert "because it has the most slices" in caplog.text and "1.9 (6 slices" in caplog.text


def test_ties_go_to_the_smallest_uid():
    assert choose_series([series("1.3", 4), series("1.2", 4), series("1.1", 3)], "f").uid == "1.2"


def test_a_localizer_is_never_chosen_when_another_series_exists(caplog):
    scout, axial = series("1.1", 20, SCOUT), series("1.2", 6)
    with caplog.at_level(logging.INFO, logger="medtl_monai.io"):
        assert choose_series([scout, axial], "f").uid == "1.2"
    assert "skipped localizer series by ImageType: 1.1" in caplog.text
    assert "1.1 (20 slices, CT, '', localizer)" in caplog.text  # listed with the others
    assert choose_series([series("1.1", 2, SCOUT), series("1.2", 3, SCOUT)], "f").uid == "1.2"  # only scouts


def test_a_requested_uid_is_honoured_even_for_a_localizer_and_a_missing_one_is_an_error(caplog):
    scout, axial = series("1.1", 2, SCOUT), series("1.2", 60)
    with caplog.at_level(logging.INFO, logger="medtl_monai.io"):
        assert choose_series([axial, scout], "f", series_uid="1.1").uid == "1.1"
    assert "because series_uid was given" in caplog.text
    with pytest.raises(DicomSeriesError, match=r"^f: series 9\.9 not found among 2 series: 1\.2 \(60 slices"):
        choose_series([axial, scout], "f", series_uid="9.9")


def test_strict_refuses_to_choose_and_one_series_needs_no_choice(caplog):
    with pytest.raises(DicomSeriesError, match=r"^f: mixes 2 series \(1\.2 \(3 slices.*pass series_uid"):
        choose_series([series("1.1", 2), series("1.2", 3)], "f", strict=True)
    with caplog.at_level(logging.INFO, logger="medtl_monai.io"):
        assert choose_series([series("1.1", 2)], "f", strict=True).uid == "1.1"
    assert not caplog.text
    with pytest.raises(DicomSeriesError, match="no image series"):
        choose_series([], "f")


def test_the_reader_skips_a_localizer_with_more_slices(tmp_path):
    """The reader applies the same rule to a folder: a 5-image scout series beside a 4-slice axial series."""
    write_ct_series(tmp_path, n_slices=5, seed=1, name_prefix="a", header={"ImageType": SCOUT})
    axial = write_ct_series(tmp_path, n_slices=4, seed=2, name_prefix="b", header={"ImageType": AXIAL})
    image, meta = DicomSeriesReader().get_data(DicomSeriesReader().read(tmp_path))
    assert meta["SeriesInstanceUID"] == axial.series_uid and image.shape[2] == 4
