"""Synthetic data for the demos, the tests and the benchmarks. Real-data rooms never import this room.

- :mod:`.demo`: the semi-synthetic chest CT / X-ray demo data set in the BIMCV layout, as NIfTI and DICOM, with
  datalists (:func:`make_demo_dataset`), rendered from the phantoms of :mod:`.phantom`.
- :mod:`.two_step`: the fundus-like intermediate and endoscopy-like target domains of the two-step transfer demo
  (:func:`make_two_step_demo`).
- :mod:`.multilabel`: a small CheXpert-style multi-label radiograph set (opacity, effusion, cardiomegaly, with
  uncertain labels) (:func:`make_multilabel_demo`).
- :mod:`.proxy_source`: a shapes-and-textures classification task that stands in for ImageNet offline
  (:func:`make_proxy_source`).
- :mod:`.dicom`: every DICOM file this project writes (CT series, Enhanced CT, CR / DX radiographs), each writer
  returning what its files decode to, with reproducible UIDs (:func:`uid`).
- :mod:`.nifti`: NIfTI volumes and radiographs with RAS affines, and BIDS JSON sidecars.

Imports only the lower rooms :mod:`medtl_monai.io` and :mod:`medtl_monai.data`.
"""

from .demo import CLASS_NAMES, DemoCase, make_demo_dataset, plan_cases
from .multilabel import MULTILABEL_CLASSES, enlarge_heart, make_multilabel_demo
from .dicom import SyntheticVolume, uid, write_ct_series, write_enhanced_ct, write_xray
from .nifti import write_bids_sidecar, write_ct_nifti, write_xray_nifti
from .phantom import Anatomy, CTGeometry, Findings, render_ct, render_xray, sample_anatomy, sample_findings
from .proxy_source import PROXY_CLASSES, make_proxy_source, render_proxy_image
from .two_step import INTERMEDIATE_CLASSES, TARGET_CLASSES, make_two_step_demo

__all__ = [
    "CLASS_NAMES",
    "INTERMEDIATE_CLASSES",
    "MULTILABEL_CLASSES",
    "PROXY_CLASSES",
    "TARGET_CLASSES",
    "Anatomy",
    "CTGeometry",
    "DemoCase",
    "Findings",
    "SyntheticVolume",
    "enlarge_heart",
    "make_demo_dataset",
    "make_multilabel_demo",
    "make_proxy_source",
    "make_two_step_demo",
    "plan_cases",
    "render_ct",
    "render_proxy_image",
    "render_xray",
    "sample_anatomy",
    "sample_findings",
    "uid",
    "write_bids_sidecar",
    "write_ct_nifti",
    "write_ct_series",
    "write_enhanced_ct",
    "write_xray",
    "write_xray_nifti",
]
