"""A MONAI Deploy operator that writes the classification result as JSON into the application's output folder."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from monai.deploy.core import Fragment, Operator, OperatorSpec

__all__ = ["ResultJSONWriterOperator"]


class ResultJSONWriterOperator(Operator):
    """Write the received result dictionary to ``<output_folder>/<file_name>`` (atomically, UTF-8, indented).

    Named input:
        result: a JSON-serialisable dictionary.

    Args:
        fragment: the application.
        output_folder: folder for the file (created).
        file_name: name of the JSON file.
    """

    def __init__(self, fragment: Fragment, *args: Any, output_folder: str | os.PathLike,
                 file_name: str = "classification.json", **kwargs: Any) -> None:
        self.output_folder, self.file_name = Path(output_folder), file_name
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("result")

    def compute(self, op_input, op_output, context) -> None:
        result = op_input.receive("result")
        self.output_folder.mkdir(parents=True, exist_ok=True)
        path = self.output_folder / self.file_name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=2), encoding="utf-8")
        os.replace(tmp, path)
        self._logger.info("wrote %s", path)
