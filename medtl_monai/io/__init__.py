"""Reading medical images: MONAI image readers for DICOM series and multi-frame files, radiographs and NIfTI, the
errors that name a bad file and its problem, and the checks a loaded image must pass.

The lowest room above ``utils``: it imports no other room of the package.
"""

from ._dicom import lps_ras_flip
from .checks import MODALITY_FLAG_KEY, CheckImage, CheckImaged, CheckModality, CheckModalityd
from .errors import BadCaseError, DicomSeriesError, SliceSpacingError, find_bad_case_error
from .readers import DicomSeriesReader, DicomXrayReader, MedicalImageReader

__all__ = [
    "MODALITY_FLAG_KEY",
    "BadCaseError",
    "CheckImage",
    "CheckImaged",
    "CheckModality",
    "CheckModalityd",
    "DicomSeriesError",
    "DicomSeriesReader",
    "DicomXrayReader",
    "MedicalImageReader",
    "SliceSpacingError",
    "find_bad_case_error",
    "lps_ras_flip",
]
