"""Explainability and error analysis: LayerCAM / Grad-CAM for 2D and 3D classifiers, CAM files and pictures, and
an HTML error-analysis report.

- :mod:`.cam`: ``LayerCAM`` (Jiang et al., IEEE TIP 2021), ``GradCAM`` (Selvaraju et al., ICCV 2017), layer fusion.
- :mod:`.overlay`: pictures (2D overlay; 3D axial / coronal / sagittal slices through the CAM peak).
- :mod:`.writer`: ``CAMWriter`` Ignite handler (NIfTI with the input's affine + PNG per case).
- :mod:`.layer_panel`: ``LayerPanelWriter`` Ignite handler (per case, the image and each stage's CAM side by side).
- :mod:`.report`: ``error_report`` (curves, confusion matrix, calibration, misclassified cases, relabelling CSV).
- :mod:`.from_bundle`: the report of a bundle's evaluation (model, preprocessing, data and predictions of the bundle).
"""

from __future__ import annotations

from ._hooks import ActivationRecorder, default_target_layers, resolve_layer
from .cam import CAM_METHODS, CAMResult, GradCAM, GradientCAM, LayerCAM, fuse_maps, make_cam, normalize_map
from .from_bundle import bundle_error_report
from .layer_panel import LayerPanelWriter, layer_panel_figure, stage_label
from .overlay import cam_figure, display_image, figure_png, peak_index, plane_slices, save_figure, slice_figure
from .report import (
    CaseRow,
    PredictionsMismatchError,
    check_prediction_ids,
    error_report,
    rank_cases,
    read_predictions,
    write_relabel_csv,
)
from .writer import CAMWriter, case_filename, nifti_affine, save_cam_nifti

__all__ = [
    "CAM_METHODS",
    "ActivationRecorder",
    "CAMResult",
    "CAMWriter",
    "CaseRow",
    "GradCAM",
    "GradientCAM",
    "LayerCAM",
    "LayerPanelWriter",
    "PredictionsMismatchError",
    "bundle_error_report",
    "cam_figure",
    "case_filename",
    "check_prediction_ids",
    "default_target_layers",
    "display_image",
    "error_report",
    "figure_png",
    "fuse_maps",
    "layer_panel_figure",
    "make_cam",
    "nifti_affine",
    "normalize_map",
    "peak_index",
    "plane_slices",
    "rank_cases",
    "read_predictions",
    "resolve_layer",
    "save_cam_nifti",
    "save_figure",
    "slice_figure",
    "stage_label",
    "write_relabel_csv",
]
