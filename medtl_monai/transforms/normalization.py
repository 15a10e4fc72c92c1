"""What a pretrained network expects of its input values: ImageNet statistics, and when to use them.

A network initialised with ImageNet weights learnt its first convolution and, above all, its stem's BatchNorm
statistics on images scaled to ``[0, 1]`` and then normalised per channel with torchvision's mean and standard
deviation. Whenever that BatchNorm runs in eval mode with its ImageNet statistics (a linear probe, a frozen or
partly frozen backbone, the first steps of step-wise fine-tuning, the probe of a cut-point search), an input left in
``[0, 1]`` gives the features of a mis-normalised image. Every preprocessing kind (CT windows, radiographs,
photographs) therefore takes one ``normalize`` option, ``"imagenet"`` or ``"none"``, applied by
:func:`normalization_transforms`, and a bundle chooses it with :func:`default_normalization`: ImageNet statistics
whenever the backbone starts from pretrained weights, the values as they are for a network trained from random
initialisation.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from pathlib import Path

from monai.config import KeysCollection
from monai.transforms import MapTransform, NormalizeIntensityd

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NORMALIZATIONS",
    "channel_statistics",
    "check_normalize",
    "default_normalization",
    "normalization_transforms",
]

logger = logging.getLogger("medtl_monai.transforms")

#: torchvision's ImageNet channel statistics for images scaled to [0, 1].
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: The values of every preprocessing's ``normalize`` option.
NORMALIZATIONS = ("imagenet", "none")

#: The file a training run writes beside its ``model.pt`` (``medtl_monai.bundle.CARD_NAME``; read here as plain JSON
#: because the transforms room comes before the bundle room).
_CARD_NAME = "model_card.json"

#: ``weights`` values that mean "no pretrained backbone" (``"checkpoint"``: trained weights are loaded afterwards,
#: and their preprocessing comes from their model card).
_NO_PRETRAINED = ("", "none", "null", "checkpoint")
#: weight sources trained on other inputs than ImageNet-normalised RGB (``medtl_monai.networks.sources``: the named
#: sources and the ``"<layout>:"`` prefixes whose layout is not torchvision's; a test keeps the two lists equal)
NON_IMAGENET_SOURCES: tuple[str, ...] = ("medicalnet", "merlin", "astra", "xrv")


def check_normalize(normalize: str) -> str:
    """Return ``normalize`` if it is one of :data:`NORMALIZATIONS`.

    Raises:
        ValueError: any other value.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    return normalize


def channel_statistics(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ImageNet ``(mean, std)`` per channel for an input of ``channels`` channels.

    Three channels take the three RGB statistics in order (CT windows lung / mediastinum / bone take R / G / B, the
    channels whose stem filters they meet). Any other number of channels takes the average statistics
    (0.449, 0.226) in every channel: the stem of such a network is adapted by summing or spreading the RGB filters,
    which sees a grey image normalised with the average statistics as it saw the RGB one.

    Args:
        channels: the number of input channels.

    Returns:
        ``(mean, std)``, each a tuple of ``channels`` values.

    Raises:
        ValueError: ``channels`` below 1.
    """
    if channels < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return (sum(IMAGENET_MEAN) / 3,) * channels, (sum(IMAGENET_STD) / 3,) * channels


def normalization_transforms(keys: KeysCollection, normalize: str, channels: int) -> list[MapTransform]:
    """The transforms that apply ``normalize`` to images of ``channels`` channels scaled to ``[0, 1]``.

    Args:
        keys: keys of the images.
        normalize: ``"imagenet"`` (``(x - mean) / std`` per channel, see :func:`channel_statistics`) or ``"none"``.
        channels: the number of channels the images have at this point.

    Returns:
        ``[NormalizeIntensityd(...)]`` or ``[]``.

    Raises:
        ValueError: an unknown ``normalize``.
    """
    if check_normalize(normalize) == "none":
        return []
    mean, std = channel_statistics(channels)
    return [NormalizeIntensityd(keys, subtrahend=mean, divisor=std, channel_wise=True)]


def _previous_run_normalization(init_from: str | os.PathLike) -> str | None:
    """The ``normalize`` recorded in the model card beside ``init_from``; None if there is no such record.

    A card without the key was written before the option existed, when CT used ``"none"`` and X-ray / photographs
    ``"imagenet"``: the factory default of the card's kind, which is what :class:`Preprocessing` rebuilds from it.
    """
    card = Path(init_from).parent / _CARD_NAME
    try:
        preprocessing = json.loads(card.read_text()).get("preprocessing", {})
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(preprocessing, dict):
        return None
    if "normalize" in preprocessing:
        return check_normalize(str(preprocessing["normalize"]))
    from .preprocessing import PREPROCESSING_KINDS  # the factories' own defaults (imported late: it imports them)

    factory = PREPROCESSING_KINDS.get(str(preprocessing.get("kind")))
    if factory is None:
        return None
    return str(inspect.signature(factory).parameters["normalize"].default)


def default_normalization(weights: str | os.PathLike | None, init_from: str | os.PathLike | None = None) -> str:
    """The ``normalize`` setting that fits how a network starts: ``"imagenet"`` for pretrained weights.

    - ``weights`` names pretrained weights (``"imagenet"``, a weights file such as a proxy-pretrained backbone,
      which is also trained on ImageNet-normalised inputs): ``"imagenet"``;
    - else, ``init_from`` is a previous run's ``model.pt`` whose model card (``model_card.json`` beside it) records
      its preprocessing: that run's setting, so that a backbone keeps seeing the inputs it was trained on (the
      target step of two-step transfer after an intermediate step);
    - else (random initialisation, ``weights="checkpoint"``): ``"none"``;
    - a medical source of another input scaling (:data:`NON_IMAGENET_SOURCES`: ``"medicalnet"``, ``"merlin"``,
      ``"astra"``, ``"xrv:..."``): ``"none"`` with a warning, since ImageNet statistics would be wrong for it.

    A bundle config calls it once::

        "normalize": "$medtl_monai.transforms.default_normalization(@weights, @init_from)"

    Args:
        weights: the network's ``weights`` argument.
        init_from: the ``init_from`` of the run (a previous run's weights file), or None.

    Returns:
        ``"imagenet"`` or ``"none"``.
    """
    setting = "" if weights is None else str(weights).strip().lower()
    if setting.split(":", 1)[0] in NON_IMAGENET_SOURCES:
        logger.warning("weights %r were not trained on ImageNet-normalised inputs: normalize='none'; set the "
                       "preprocessing to the source's own input (docs/weights.md, 'What each source expects')", weights)
        return "none"
    if setting not in _NO_PRETRAINED:
        return "imagenet"
    if init_from is not None and str(init_from).strip():
        inherited = _previous_run_normalization(init_from)
        if inherited is not None:
            logger.info("normalize=%r, as the run that %s comes from", inherited, init_from)
            return inherited
    return "none"
