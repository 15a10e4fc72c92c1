"""Data reading and checking: MONAI readers for DICOM/NIfTI, bad-case errors and datalist validation;
datalists, patient-level splits and the semi-synthetic demo data set."""

from .errors import BadCaseError, DicomSeriesError, SliceSpacingError, find_bad_case_error
from .readers import DicomSeriesReader, DicomXrayReader, MedicalImageReader
from .validate import CheckImage, CheckImaged, validate_datalist
from .datalist import bimcv_items, csv_items, load_class_names, write_datalist
from .demo import make_demo_dataset
from .splits import check_no_leakage, make_splits, patient_split

__all__ = [
    "bimcv_items",
    "csv_items",
    "load_class_names",
    "write_datalist",
    "make_demo_dataset",
    "check_no_leakage",
    "make_splits",
    "patient_split",
    "BadCaseError",
    "CheckImage",
    "CheckImaged",
    "DicomSeriesError",
    "DicomSeriesReader",
    "DicomXrayReader",
    "MedicalImageReader",
    "SliceSpacingError",
    "find_bad_case_error",
    "validate_datalist",
]
