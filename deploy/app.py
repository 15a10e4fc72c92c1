"""MONAI Deploy application: DICOM files -> CT series -> volume -> bundle classification -> JSON + DICOM SR.

Run (in the environment made by ``scripts/setup_integration_env.sh deploy``)::

    python deploy/app.py -i DICOM_FOLDER -o OUTPUT_FOLDER -m BUNDLE_FOLDER \
        [--model-file models/model.pt] [--config-file configs/inference.json] [--overrides '{"ckpt_dir": "..."}'] \
        [--series-uid SERIES_INSTANCE_UID]

``-i/-o/-m`` are MONAI Deploy's own (defaults from ``HOLOSCAN_INPUT_PATH``, ``HOLOSCAN_OUTPUT_PATH``,
``HOLOSCAN_MODEL_PATH``); ``-m`` is the bundle folder. The other options default to the environment variables
``MEDTL_MODEL_FILE``, ``MEDTL_CONFIG_FILE``, ``MEDTL_BUNDLE_OVERRIDES`` (JSON), ``MEDTL_DEVICE`` and
``MEDTL_SERIES_UID``. The series classified is the one the bundle's own reader would read from the study's CT series
(:class:`BundleSeriesSelectorOperator`: most slices, localizers left out, ``--series-uid`` when given).
Outputs: ``OUTPUT_FOLDER/classification.json`` (class probabilities, chosen label, series identifiers) and a DICOM
Basic Text SR instance (``*.dcm``) that references the classified study.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from bundle_classifier_operator import BundleClassifierOperator
from monai.deploy.conditions import CountCondition
from monai.deploy.core import AppContext, Application
from monai.deploy.operators import (
    DICOMDataLoaderOperator,
    DICOMSeriesToVolumeOperator,
    DICOMTextSRWriterOperator,
    ModelInfo,
)
from result_writer_operator import ResultJSONWriterOperator
from series_selector_operator import BundleSeriesSelectorOperator

__all__ = ["CT_SELECTION_RULES", "MedTLClassificationApp", "main"]

#: the series that qualify: every CT series of the study (any description); see DICOMSeriesSelectorOperator for the
#: rule syntax. Among them BundleSeriesSelectorOperator chooses by the bundle reader's rule.
CT_SELECTION_RULES = json.dumps({"selections": [{"name": "CT series", "conditions": {"Modality": "(?i)CT"}}]})


class MedTLClassificationApp(Application):
    """DICOM in, class probabilities out (JSON and DICOM SR), with a medtl-monai classification bundle.

    Args:
        argv: MONAI Deploy's command line (``[python, app.py, -i, ..., -o, ..., -m, ...]``).
        model_file, config_file, overrides, device: see :class:`BundleClassifierOperator`.
        selection_rules: JSON rules for ``DICOMSeriesSelectorOperator``: which series qualify.
        series_uid: SeriesInstanceUID to classify; ``None``: the bundle reader's rule chooses among the qualifying
            series (most slices, no localizer, ties to the smallest UID).
    """

    name = "medtl-classification"
    description = "Classifies a CT series with a medtl-monai transfer-learning bundle."
    version = "0.1.0"

    def __init__(self, argv: list[str] | None = None, *, model_file: str = "models/model.pt",
                 config_file: str = "configs/inference.json", overrides: dict | None = None, device: str = "cpu",
                 selection_rules: str = CT_SELECTION_RULES, series_uid: str | None = None) -> None:
        self.model_file, self.config_file, self.device = model_file, config_file, device
        self.overrides, self.selection_rules, self.series_uid = overrides or {}, selection_rules, series_uid or None
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(argv or [sys.executable, *sys.argv])

    def compose(self) -> None:
        context: AppContext = Application.init_app_context(self.argv)
        input_folder, output_folder = Path(context.input_path), Path(context.output_path)
        bundle = Path(context.model_path)
        self._logger.info("input %s, output %s, bundle %s", input_folder, output_folder, bundle)

        loader = DICOMDataLoaderOperator(self, CountCondition(self, 1), input_folder=input_folder, name="dicom_loader")
        selector = BundleSeriesSelectorOperator(self, rules=self.selection_rules, series_uid=self.series_uid,
                                                name="series_selector")
        to_volume = DICOMSeriesToVolumeOperator(self, name="series_to_volume")
        classifier = BundleClassifierOperator(self, bundle_path=bundle, model_file=self.model_file,
                                              config_file=self.config_file, overrides=self.overrides,
                                              device=self.device, name="bundle_classifier")
        json_writer = ResultJSONWriterOperator(self, output_folder=output_folder, name="json_writer")
        model_info = ModelInfo("medtl-monai", bundle.name, self.version, "")
        sr_writer = DICOMTextSRWriterOperator(self, copy_tags=True, model_info=model_info, output_folder=output_folder,
                                              name="sr_writer")

        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, to_volume, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(to_volume, classifier, {("image", "image")})
        self.add_flow(classifier, json_writer, {("result", "result")})
        self.add_flow(classifier, sr_writer, {("result_text", "text")})
        self.add_flow(selector, sr_writer, {("study_selected_series_list", "study_selected_series_list")})


def main(argv: list[str] | None = None) -> None:
    """Parse this application's options, leave MONAI Deploy's (``-i/-o/-m/-w/-l``) to it, and run."""
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model-file", default=os.environ.get("MEDTL_MODEL_FILE", "models/model.pt"))
    parser.add_argument("--config-file", default=os.environ.get("MEDTL_CONFIG_FILE", "configs/inference.json"))
    parser.add_argument("--overrides", default=os.environ.get("MEDTL_BUNDLE_OVERRIDES", "{}"),
                        help="JSON object of bundle config overrides")
    parser.add_argument("--device", default=os.environ.get("MEDTL_DEVICE", "cpu"))
    parser.add_argument("--series-uid", default=os.environ.get("MEDTL_SERIES_UID") or None,
                        help="SeriesInstanceUID to classify (default: the series the bundle's reader would choose)")
    ours, rest = parser.parse_known_args(argv[1:])
    overrides = json.loads(ours.overrides)
    if not isinstance(overrides, dict):
        raise SystemExit(f"--overrides must be a JSON object, got {ours.overrides!r}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = MedTLClassificationApp([sys.executable, argv[0], *rest], model_file=ours.model_file,
                                 config_file=ours.config_file, overrides=overrides, device=ours.device,
                                 series_uid=ours.series_uid)
    app.run()


if __name__ == "__main__":
    main()
