"""What differs between architecture families, in one place: each family is one :class:`Family` adapter.

Every other module of the package asks the adapter (through :attr:`FamilySpec.family`) instead of testing a family
name: which stages a backbone has, how torchvision names its tensors, what normalisation follows a cut, whether a
TransFusion slim top can be built.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .families import FamilySpec

__all__ = ["Family"]


class Family(ABC):
    """An architecture family: how its backbones are built, named, cut and mapped to torchvision's tensors.

    Attributes:
        name: the family's name (for messages only).
        block_prefix: stage-name prefix of the stages that hold blocks (``layer``, ``denseblock``).
        unit: what a layer-level cut counts, for messages (``block``, ``layer``).
        head_prefixes: key prefixes of torchvision's classifier, dropped when weights are loaded.
        shortcut_branches: names of child modules that run beside a block's main path and give its output size
            (a ResNet's ``downsample``), skipped when input sizes are worked out from the layers.
    """

    name: str = ""
    block_prefix: str = ""
    unit: str = "block"
    head_prefixes: tuple[str, ...] = ()
    shortcut_branches: tuple[str, ...] = ()

    # ---- stages --------------------------------------------------------------------------------------------------
    def block_stages(self, spec: FamilySpec) -> tuple[str, ...]:
        """Stages that hold residual blocks / dense layers, in order (what layer-level cuts count)."""
        return tuple(f"{self.block_prefix}{i + 1}" for i in range(len(spec.blocks)))

    @abstractmethod
    def stage_names(self, spec: FamilySpec) -> tuple[str, ...]:
        """Names of the backbone stages, bottom to top (a final normalisation, if any, excluded)."""

    @abstractmethod
    def build_stages(self, spec: FamilySpec, spatial_dims: int, widths: tuple[int, ...] | None = None) -> OrderedDict[str, nn.Module]:
        """The stages after the stem (MONAI modules), randomly initialised, named as in :meth:`stage_names` (plus a
        final normalisation when the family has one).

        Args:
            spec: the architecture.
            spatial_dims: 2 or 3.
            widths: per-stage channel widths (ResNet slim tops); ``None`` for the architecture's own.
        """

    # ---- cuts ----------------------------------------------------------------------------------------------------
    def tail_norm(self, stages: Mapping[str, nn.Module], block: int) -> nn.modules.batchnorm._BatchNorm | None:
        """The pretrained normalisation that follows block stage number ``block`` (1-based) in the full network,
        which a network cut inside or after that stage keeps as its final normalisation; ``None`` when the family
        has none (a ResNet block ends with its own ReLU)."""
        return None

    def out_channels(self, block_stage: nn.Module) -> int:
        """Channels out of a (possibly shortened) block stage."""
        raise NotImplementedError(f"{self.name} has no final normalisation to size.")

    def slim(self, spec: FamilySpec, stages: Mapping[str, nn.Module], after: str, width: float,
             spatial_dims: int) -> OrderedDict[str, nn.Module]:
        """TransFusion slim variant: the stages up to ``after`` as they are, the later ones rebuilt thinner.

        Raises:
            ValueError: the family has no slim variant.
        """
        raise ValueError(f"the TransFusion slim variant is implemented for ResNet families, not arch={spec.name!r}.")

    # ---- torchvision keys ----------------------------------------------------------------------------------------
    @abstractmethod
    def from_torchvision_key(self, key: str) -> str:
        """A torchvision key as this package's backbone key (the classifier already removed)."""

    @abstractmethod
    def to_torchvision_key(self, key: str) -> str:
        """This package's backbone key as torchvision's (the inverse of :meth:`from_torchvision_key`).

        Raises:
            ValueError: a key that is not part of a backbone of this family.
        """

    def from_torchvision(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename a torchvision state dict to backbone keys, dropping the classifier (heads are always new)."""
        return {self.from_torchvision_key(k): v for k, v in state_dict.items() if not k.startswith(self.head_prefixes)}

    def to_torchvision(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename a full backbone's state dict to torchvision's keys (a file ``weights=`` loads like torchvision's)."""
        return {self.to_torchvision_key(k): v for k, v in state_dict.items()}


def rename(key: str, rules: tuple[tuple[str, str], ...]) -> str:
    """Apply ``(pattern, replacement)`` regular-expression rules to a key, in order."""
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key
