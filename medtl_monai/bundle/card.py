"""The model card: what a trained ``model.pt`` is, saved beside it, so that inference can never disagree with it.

Training writes ``<ckpt_dir>/model_card.json`` with every new best model (``TrainingCheckpointer(card=...)``)::

    {"format": "medtl-monai model card", "version": 1,
     "network": {"arch": "resnet50", "spatial_dims": 3, "in_channels": 3, "num_classes": 2, "cut": 10, ...},
     "preprocessing": {"kind": "ct", "spatial_size": [96, 96, 32], "pixdim": [3.5, 3.5, 10.0], ...},
     "class_names": ["negative", "positive"]}

``network`` is :attr:`TransferClassifier.config <medtl_monai.networks.TransferClassifier.config>`,
``preprocessing`` is :attr:`Preprocessing.config <medtl_monai.transforms.Preprocessing.config>` (as timm and
Hugging Face keep a config beside the weights). Evaluation, explanation, inference, export, MONAI Deploy and MONAI
Label build the network and the preprocessing from the card of the model they load, so a bundle declares those
settings once (in ``train.json``) and a model trained with overrides (``--image_size``, ``--cut``, the X-ray
variant) is served with them. A bundle without a trained model (a fresh copy, the model zoo's checks) gets the card
of ``train.json``'s defaults.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..data import default_input_kinds
from ..networks import CHECKPOINT_WEIGHTS, TransferClassifier
from ..transforms import Preprocessing
from ..utils import as_bool
from .config import load_config

__all__ = ["CARD_NAME", "ModelCard", "card_input_kinds", "card_network", "card_preprocessing", "make_model_card",
           "read_model_card"]

logger = logging.getLogger("medtl_monai.bundle")

#: File name of the card beside ``model.pt``.
CARD_NAME = "model_card.json"
_FORMAT = "medtl-monai model card"
_VERSION = 1


@dataclass
class ModelCard:
    """What a trained model is.

    Attributes:
        network: ``TransferClassifier`` arguments (without weights).
        preprocessing: ``Preprocessing`` arguments (``kind`` and settings).
        class_names: the classes, in output order.
        source: where the card was read from (a file, or the config whose defaults it describes).
    """

    network: dict[str, Any]
    preprocessing: dict[str, Any]
    class_names: list[str]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def multi_label(self) -> bool:
        """Whether the outputs are independent per-class probabilities (sigmoid) rather than one softmax."""
        return bool(self.extra.get("multi_label", False))

    def to_dict(self) -> dict[str, Any]:
        """The card as the JSON document saved beside the weights."""
        return {"format": _FORMAT, "version": _VERSION, "network": self.network, "preprocessing": self.preprocessing,
                "class_names": list(self.class_names), **self.extra}

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> ModelCard:
        """Read a card.

        Raises:
            ValueError: the file is not a model card (the message names it).
        """
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"model card {str(path)!r} cannot be read: {err}") from err
        if not isinstance(doc, Mapping) or doc.get("format") != _FORMAT or not {"network", "preprocessing", "class_names"} <= set(doc):
            raise ValueError(f"{str(path)!r} is not a medtl-monai model card (needs format, network, preprocessing, "
                             "class_names).")
        extra = {k: v for k, v in doc.items() if k not in ("format", "version", "network", "preprocessing", "class_names")}
        return cls(dict(doc["network"]), dict(doc["preprocessing"]), [str(c) for c in doc["class_names"]], str(path), extra)


def make_model_card(network: nn.Module, preprocessing: Preprocessing, class_names: Sequence[str],
                    multi_label: bool | str = False) -> dict[str, Any]:
    """The card of a model being trained, as the JSON-ready dict the checkpointer saves beside ``model.pt``.

    Args:
        network: the ``TransferClassifier`` (``network_def``).
        preprocessing: its :class:`~medtl_monai.transforms.Preprocessing` (``preprocessing_transforms``).
        class_names: the classes, in output order.
        multi_label: whether the model is trained multi-label (sigmoid per class; ``configs/multi_label.json``), so
            that inference, MONAI Deploy and MONAI Label apply a sigmoid instead of a softmax.

    Raises:
        TypeError: a network or preprocessing that cannot describe itself.
    """
    if not isinstance(getattr(network, "config", None), Mapping):
        raise TypeError(f"{type(network).__name__} has no `config`: the model card needs a TransferClassifier.")
    if not isinstance(preprocessing, Preprocessing):
        raise TypeError("the model card needs the preprocessing as medtl_monai.transforms.Preprocessing, got "
                        f"{type(preprocessing).__name__}.")
    if len(class_names) != int(network.config["num_classes"]):
        raise ValueError(f"{len(class_names)} class names {list(class_names)} for a network with "
                         f"{network.config['num_classes']} outputs.")
    extra = {"multi_label": True, "output": "sigmoid"} if as_bool(multi_label) else {}
    return ModelCard(dict(network.config), preprocessing.config, [str(c) for c in class_names], extra=extra).to_dict()


def read_model_card(ckpt_dir: str | os.PathLike, bundle_root: str | os.PathLike | None = None,
                    train_config: str = "train.json") -> ModelCard:
    """The card of the model in ``ckpt_dir``, or, when it has none, the card of the bundle's training defaults.

    Args:
        ckpt_dir: the folder of ``model.pt``.
        bundle_root: the bundle, whose ``configs/<train_config>`` describes an untrained model; default: the
            parent of ``ckpt_dir``.
        train_config: the training config that defines the defaults.

    Returns:
        The card.

    Raises:
        ValueError: a card file that cannot be read.
    """
    path = Path(ckpt_dir) / CARD_NAME
    if path.is_file():
        return ModelCard.from_file(path)
    root = Path(bundle_root) if bundle_root is not None else Path(ckpt_dir).resolve().parent
    parser = load_config(root, train_config, {"weights": CHECKPOINT_WEIGHTS})
    card = make_model_card(parser.get_parsed_content("network_def"), parser.get_parsed_content("preprocessing_transforms"),
                           parser.get_parsed_content("class_names"), multi_label=parser.get("multi_label", False))
    logger.info("no %s in %s: using the defaults of %s", CARD_NAME, ckpt_dir, root / "configs" / train_config)
    extra = {k: v for k, v in card.items() if k not in ("format", "version", "network", "preprocessing", "class_names")}
    return ModelCard(card["network"], card["preprocessing"], card["class_names"], f"defaults of {train_config}", extra)


def card_network(card: ModelCard) -> TransferClassifier:
    """The card's network, to be filled by a checkpoint (no pretrained weights are read)."""
    return TransferClassifier(**card.network, weights=CHECKPOINT_WEIGHTS)


def card_preprocessing(card: ModelCard, load: bool = True) -> Preprocessing:
    """The card's preprocessing (``load=False`` without ``LoadImaged``, for images already in memory)."""
    return Preprocessing(**card.preprocessing, load=load)


def card_input_kinds(card: ModelCard) -> tuple[str, ...]:
    """The kinds of case an inference folder is searched for (:func:`~medtl_monai.data.folder_cases`)."""
    return default_input_kinds(int(card.network["spatial_dims"]))
