"""Where to cut: a cheap search for TruncatedTL's cut point with linear probes on frozen, pooled features.

TruncatedTL (Peng et al., "Rethinking Transfer Learning for Medical Image Classification", BMVC 2023) searches the
cut hierarchically: first at block level (after ``layer1`` .. ``layer4``), then at layer level (after each residual
block / dense layer) around the best block. Finetuning a network per candidate is what the paper does and what a
CPU cannot afford; this module scores each candidate with a *proxy*: a logistic-regression probe trained on the
frozen backbone's globally average-pooled features at that cut (training split), scored by AUROC on the validation
split. The proxy measures how linearly separable the classes are at each depth, which is what the kept bottom of a
truncated network starts from; it does not see what finetuning would add, so treat its answer as a starting point
and confirm the top two or three cuts with real training.

``method="finetune"`` is that confirmation, automated: each candidate cut is truncated from the pretrained network,
given a new head and finetuned for a few epochs on the training split (Adam, class-weighted cross-entropy, no
augmentation, preprocessed images cached once), and scored by its best validation AUROC over those epochs. It costs
one short training per candidate instead of one forward pass per image, and sees what finetuning adds: on the
X-ray demo with proxy-pretrained ResNet-50 weights the probe preferred a one-block network that finetuned far worse
than the paper's TTL-2 cut (docs/benchmarks.md).

Cost: ONE forward pass of the full backbone per image serves every candidate cut, block and layer level alike:
forward hooks on every residual block (ResNet) or dense layer (DenseNet) pool the feature map as it is produced
(a DenseNet cut inside a block is scored after the pretrained normalisation + ReLU that the truncated network
applies there). The probes then cost milliseconds each. :class:`CutSearchResult` reports the wall time, the number
of images passed forward and the number of forward passes.
"""

from __future__ import annotations

import copy
import csv
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..bundle import load_config
from ..evaluation import classification_summary
from ..networks import (
    ClassificationHead,
    TransferClassifier,
    count_parameters,
    feature_channels,
    get_family,
    truncate_backbone,
)
from ..training import check_network, class_weights

__all__ = ["CutScore", "CutSearchResult", "CUT_SEARCH_METHODS", "candidate_cuts", "extract_cut_features", "linear_probe",
           "finetune_cut", "search_cut", "run_cut_search"]

#: ``probe``: linear probe on frozen pooled features (one forward pass per image); ``finetune``: a short finetune per cut.
CUT_SEARCH_METHODS: tuple[str, ...] = ("probe", "finetune")


@dataclass
class CutScore:
    """One candidate cut and its proxy score.

    Attributes:
        cut: the cut as a bundle takes it (``--cut``): a layer count, or a stage name at block level.
        blocks: the cut as a number of residual blocks / dense layers kept.
        level: ``"block"`` or ``"layer"``.
        where: human-readable position, e.g. ``"layer3 block 4/6"``.
        params: parameters of the truncated network with a linear head.
        auroc: validation AUROC of the proxy (probe, or best epoch of the short finetune).
        auprc: validation AUPRC at that point.
    """

    cut: str | int
    blocks: int
    level: str
    where: str
    params: int
    auroc: float
    auprc: float


@dataclass
class CutSearchResult:
    """Scores of every probed cut and the recommendation.

    Attributes:
        arch: the architecture.
        scores: block-level scores, then layer-level ones.
        best_block: the best block-level cut (a stage name).
        recommended: the best cut overall (an int layer count, or a stage name when a block end wins).
        n_train, n_val: images in each split.
        forward_images: images passed through the backbone (``n_train + n_val``: one pass each).
        forward_passes: batched forward calls of the backbone.
        extract_s: wall time of feature extraction (or of caching the preprocessed images); probe_s: of all probes
            (or short finetunes); total_s: of the search.
        notes: warnings shown under the table.
        method: ``"probe"`` or ``"finetune"``.
        finetune_epochs: epochs of each short finetune (``method="finetune"``).
    """

    arch: str
    scores: list[CutScore]
    best_block: str
    recommended: str | int
    n_train: int
    n_val: int
    forward_images: int
    forward_passes: int
    extract_s: float
    probe_s: float
    total_s: float
    notes: list[str] = field(default_factory=list)
    method: str = "probe"
    finetune_epochs: int = 0

    def markdown(self) -> str:
        """The result as Markdown: a table (best row in bold), the recommendation and the cost."""
        if self.method == "finetune":
            what = f"a {self.finetune_epochs}-epoch finetune of each truncated network (new head, every kept layer trained)"
        else:
            what = "linear probe on frozen, globally pooled features"
        tag = self.method
        lines = [
            f"Cut-point search for {self.arch}: {what} ({self.n_train} training / {self.n_val} validation images), "
            "scored by validation AUROC.",
            "",
            f"| level | cut (`--cut`) | position | params (M) | {tag} AUROC | {tag} AUPRC |",
            "|---|---|---|---:|---:|---:|",
        ]
        for s in self.scores:
            star = "**" if s.cut == self.recommended and s.level == ("layer" if isinstance(self.recommended, int) else "block") else ""
            lines.append(f"| {s.level} | {star}{s.cut}{star} | {s.where} | {s.params / 1e6:.2f} | {s.auroc:.3f} | {s.auprc:.3f} |")
        if self.method == "finetune":
            cost = (f"Cost: {self.total_s:.1f} s wall ({self.extract_s:.1f} s loading and preprocessing the images once, "
                    f"{self.probe_s:.1f} s for {len(self.scores)} short finetunes of {self.finetune_epochs} "
                    f"epoch{'s' if self.finetune_epochs != 1 else ''} on "
                    f"{self.n_train} images, {self.probe_s / max(len(self.scores), 1):.1f} s each).")
        else:
            cost = (f"Cost: {self.total_s:.1f} s wall ({self.extract_s:.1f} s feature extraction, {self.probe_s:.2f} s for "
                    f"{len(self.scores)} probes); {self.forward_images} images through the full backbone in "
                    f"{self.forward_passes} batched forward passes: ONE pass per image serves every cut (hooks on each "
                    "stage and block).")
        lines += ["", f"Best block: `{self.best_block}`. Recommended: `--cut {self.recommended}`.", "", cost]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def write(self, output_dir: str | os.PathLike, stem: str = "cut_search") -> tuple[Path, Path]:
        """Write ``<stem>.md`` and ``<stem>.csv`` into ``output_dir``; return their paths."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        md, table = out / f"{stem}.md", out / f"{stem}.csv"
        md.write_text(self.markdown() + "\n")
        with open(table, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["level", "cut", "blocks", "position", "params", "auroc", "auprc", "recommended"])
            for s in self.scores:
                writer.writerow([s.level, s.cut, s.blocks, s.where, s.params, f"{s.auroc:.6f}", f"{s.auprc:.6f}",
                                 int(s.cut == self.recommended)])
        return md, table


def candidate_cuts(arch: str) -> list[tuple[int, str, str]]:
    """Every layer-level cut of an architecture: ``(blocks kept, stage, position)`` for 1 .. total blocks."""
    spec = get_family(arch)
    unit = spec.family.unit
    out, kept = [], 0
    for stage, n in zip(spec.block_stages, spec.blocks):
        for j in range(1, n + 1):
            out.append((kept + j, stage, f"{stage} {unit} {j}/{n}"))
        kept += n
    return out


def _pool(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).mean(-1)


def _batches(loader: Iterable, image_key: str, label_key: str) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    for batch in loader:
        if isinstance(batch, Mapping):
            x, y = batch[image_key], batch[label_key]
        else:
            x, y = batch[0], batch[1]
        x = x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)  # MONAI MetaTensor -> plain tensor
        y = y.as_tensor() if hasattr(y, "as_tensor") else torch.as_tensor(y)
        yield x.float(), y.reshape(-1).long()


def _require_full_backbone(net: nn.Module, spec: Any) -> None:
    """Raise ``ValueError`` unless ``net`` holds the whole pretrained backbone (not cut, not slimmed)."""
    stages = [n for n, _ in net.backbone.named_children()][: len(spec.stage_names)]
    if getattr(net, "cut", None) is not None or getattr(net, "slim_after", None) is not None or stages != list(spec.stage_names):
        raise ValueError("the cut search needs the full backbone: build the network with cut=None and slim_after=None.")


@torch.no_grad()
def extract_cut_features(
    network: nn.Module, loader: Iterable, *, image_key: str = "image", label_key: str = "label", device: str | torch.device = "cpu"
) -> tuple[dict[int, torch.Tensor], torch.Tensor, int]:
    """Pooled features at every layer-level cut, from one forward pass of the full backbone per batch.

    Args:
        network: a ``TransferClassifier`` built with ``cut=None`` (the full backbone; its head is not used).
        loader: batches of ``{image_key: images, label_key: labels}`` dicts or ``(images, labels)`` pairs.
        image_key, label_key: keys of dict batches.
        device: where to run the backbone.

    Returns:
        ``({blocks kept: (N, C) features}, (N,) labels, number of forward passes)``.

    Raises:
        ValueError: the network is truncated or slimmed.
    """
    net = check_network(network)
    spec = get_family(net.arch)
    _require_full_backbone(net, spec)
    backbone = net.backbone.to(device).eval()
    stages = dict(backbone.named_children())
    store: dict[int, list[torch.Tensor]] = {}
    hooks = []
    count = 0
    for k, (stage, n) in enumerate(zip(spec.block_stages, spec.blocks)):
        norm = spec.family.tail_norm(stages, k + 1)  # the normalisation a network cut here ends with, if any
        for j, layer in enumerate(getattr(backbone, stage).children()):
            count += 1

            def hook(module, args, output, key=count, norm=norm):
                if norm is not None:  # the truncated network's pretrained normalisation + ReLU (DenseNets)
                    c = output.shape[1]
                    output = F.relu(F.batch_norm(output, norm.running_mean[:c], norm.running_var[:c], norm.weight[:c],
                                                 norm.bias[:c], False, 0.0, norm.eps))
                store.setdefault(key, []).append(_pool(output).float().cpu())

            hooks.append(layer.register_forward_hook(hook))
    labels: list[torch.Tensor] = []
    passes = 0
    try:
        for x, y in _batches(loader, image_key, label_key):
            backbone(x.to(device))
            labels.append(y)
            passes += 1
    finally:
        for h in hooks:
            h.remove()
    if not labels:
        raise ValueError("the loader gave no batch.")
    return {k: torch.cat(v) for k, v in store.items()}, torch.cat(labels), passes


def linear_probe(
    train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, num_classes: int, *, l2: float = 1e-2, max_iter: int = 100
) -> np.ndarray:
    """Multinomial logistic regression on standardised features (L-BFGS, L2 penalty); validation probabilities.

    Args:
        train_x: (N, C) training features; train_y: (N,) class indices.
        val_x: (M, C) validation features.
        num_classes: K.
        l2: penalty on the weights (features are standardised with the training mean and std).
        max_iter: L-BFGS iterations.

    Returns:
        (M, K) class probabilities.
    """
    x = train_x.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    x, v = (x - mean) / std, (val_x.double() - mean) / std
    w = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
    y = train_y.long()

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + l2 * (w**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return torch.softmax(v @ w + b, dim=1).numpy()


def _score(features, y_train, y_val, n_train, blocks, num_classes, l2):
    f = features[blocks]
    probs = linear_probe(f[:n_train], y_train, f[n_train:], num_classes, l2=l2)
    summary = classification_summary(probs, y_val.numpy())
    return summary["auroc"], summary["auprc"]


def _cached(loader: Iterable, image_key: str, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every batch of a loader, concatenated: ``(images, labels)``."""
    batches = list(_batches(loader, image_key, label_key))
    if not batches:
        raise ValueError("the loader gave no batch.")
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def finetune_cut(
    network: nn.Module,
    blocks: int,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 16,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """Truncate a copy of the network after ``blocks`` blocks, add a new head, finetune it briefly, score it.

    Args:
        network: a ``TransferClassifier`` with ``cut=None`` and the pretrained weights (left unchanged).
        blocks: residual blocks / dense layers kept.
        train: training ``(images, labels)`` (preprocessed, cached in memory).
        val: validation ``(images, labels)``.
        epochs: training epochs (every kept layer and the head train at ``lr``; Adam; class-weighted cross-entropy).
        lr: learning rate.
        batch_size: training batch size.
        seed: seed of the head initialisation and of the batch order (the same for every cut).
        device: where to train.

    Returns:
        ``(AUROC, AUPRC)`` on the validation images at the epoch with the best validation AUROC.
    """
    net = check_network(network)
    spec = get_family(net.arch)
    torch.manual_seed(seed)
    backbone = truncate_backbone(copy.deepcopy(net.backbone), spec, blocks)
    model = nn.Sequential(backbone, ClassificationHead(feature_channels(backbone), int(net.num_classes), net.spatial_dims))
    model.to(device)
    x, y = train
    weight = class_weights([{"label": int(v)} for v in y], int(net.num_classes)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    best = (-math.inf, float("nan"))
    for _ in range(int(epochs)):
        model.train()
        for idx in torch.randperm(len(y), generator=order).split(int(batch_size)):
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            optimizer.zero_grad()
            F.cross_entropy(model(x[idx].to(device)), y[idx].to(device), weight=weight).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            probs = torch.cat([torch.softmax(model(v.to(device)), 1).cpu() for v in val[0].split(int(batch_size))])
        summary = classification_summary(probs.numpy(), val[1].numpy())
        if _finite(summary["auroc"]) > best[0]:
            best = (summary["auroc"], summary["auprc"])
    return best


Scorer = Callable[[int], tuple[float, float]]


def _probe_scorer(net: nn.Module, train_loader: Iterable, val_loader: Iterable, *, image_key: str, label_key: str,
                  device: str | torch.device, l2: float) -> tuple[Scorer, torch.Tensor, torch.Tensor, int]:
    """Features of every cut from one pass over both splits; a cut's score is its linear probe's."""
    train_f, y_train, p1 = extract_cut_features(net, train_loader, image_key=image_key, label_key=label_key, device=device)
    val_f, y_val, p2 = extract_cut_features(net, val_loader, image_key=image_key, label_key=label_key, device=device)
    features = {k: torch.cat([train_f[k], val_f[k]]) for k in train_f}
    num_classes = int(net.num_classes)

    def score(blocks: int) -> tuple[float, float]:
        return _score(features, y_train, y_val, len(y_train), blocks, num_classes, l2)

    return score, y_train, y_val, p1 + p2


def _finetune_scorer(net: nn.Module, train_loader: Iterable, val_loader: Iterable, *, image_key: str, label_key: str,
                     device: str | torch.device, epochs: int, lr: float, batch_size: int,
                     seed: int) -> tuple[Scorer, torch.Tensor, torch.Tensor, int]:
    """Both splits cached once; a cut's score is its short finetune's best validation epoch."""
    _require_full_backbone(net, get_family(net.arch))
    train_data, val_data = _cached(train_loader, image_key, label_key), _cached(val_loader, image_key, label_key)

    def score(blocks: int) -> tuple[float, float]:
        return finetune_cut(net, blocks, train_data, val_data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                            device=device)

    return score, train_data[1], val_data[1], 0


def _layer_window(ends: Sequence[int], best_block: int) -> range:
    """Layer-level cuts around block cut number ``best_block``: inside its stage and the stage after it."""
    low = ends[best_block - 1] if best_block > 0 else 0
    high = ends[min(best_block + 1, len(ends) - 1)]
    return range(int(low) + 1, int(high) + 1)


def _best(scores: Sequence[CutScore]) -> CutScore:
    """The highest AUROC; ties go to the smaller network."""
    return max(scores, key=lambda s: (_finite(s.auroc), -s.params))


def search_cut(
    network: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable,
    *,
    image_key: str = "image",
    label_key: str = "label",
    l2: float = 1e-2,
    device: str | torch.device = "cpu",
    method: str = "probe",
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 16,
    seed: int = 0,
) -> CutSearchResult:
    """Score block-level cuts, then layer-level cuts around the best block, and recommend one.

    The layer-level window is every layer cut inside the best block's stage and the stage after it (the cuts just
    before and just after the best block end). Ties go to the smaller network.

    Args:
        network: a ``TransferClassifier`` with ``cut=None`` and the pretrained weights to be truncated.
        train_loader: training batches (preprocessed, not augmented).
        val_loader: validation batches.
        image_key, label_key: keys of dict batches.
        l2: probe penalty (``method="probe"``).
        device: where to run the backbone.
        method: ``"probe"`` (linear probe on frozen features) or ``"finetune"`` (:func:`finetune_cut` per cut).
        epochs, lr, batch_size, seed: the short finetunes (``method="finetune"``).

    Returns:
        A :class:`CutSearchResult`.

    Raises:
        ValueError: the network is truncated, a split is empty, a split holds one class only, or an unknown method.
    """
    if method not in CUT_SEARCH_METHODS:
        raise ValueError(f"method={method!r} is unknown; choose one of {list(CUT_SEARCH_METHODS)}.")
    start = time.perf_counter()
    net = check_network(network)
    spec = get_family(net.arch)
    common = {"image_key": image_key, "label_key": label_key, "device": device}
    if method == "probe":
        score, y_train, y_val, passes = _probe_scorer(net, train_loader, val_loader, l2=l2, **common)
    else:
        score, y_train, y_val, passes = _finetune_scorer(net, train_loader, val_loader, epochs=epochs, lr=lr,
                                                         batch_size=batch_size, seed=seed, **common)
    extract_s = time.perf_counter() - start
    for name, y in (("training", y_train), ("validation", y_val)):
        if len(torch.unique(y)) < 2:
            raise ValueError(f"the {name} split holds one class only; the probe cannot be scored.")
    positions = {blocks: where for blocks, _, where in candidate_cuts(spec.name)}
    ends = [int(e) for e in np.cumsum(spec.blocks)]
    num_classes = int(net.num_classes)

    def cut_score(cut: str | int, blocks: int, level: str, where: str) -> CutScore:
        kept = truncate_backbone(net.backbone, spec, blocks)
        params = count_parameters(kept) + feature_channels(kept) * num_classes + num_classes  # + a linear head
        return CutScore(cut, blocks, level, where, params, *score(blocks))

    t0 = time.perf_counter()
    block_scores = [cut_score(stage, end, "block", f"end of {stage}") for stage, end in zip(spec.block_stages, ends)]
    best_block = _best(block_scores)
    window = _layer_window(ends, block_scores.index(best_block))
    layer_scores = [cut_score(blocks, blocks, "layer", positions[blocks]) for blocks in window]
    probe_s = time.perf_counter() - t0
    return CutSearchResult(
        arch=spec.name, scores=block_scores + layer_scores, best_block=str(best_block.cut),
        recommended=_best(layer_scores).cut, n_train=len(y_train), n_val=len(y_val),
        forward_images=len(y_train) + len(y_val), forward_passes=passes, extract_s=extract_s, probe_s=probe_s,
        total_s=time.perf_counter() - start,
        notes=[] if getattr(net, "weights_source", None) else
        ["the backbone has NO pretrained weights (random initialisation): the search scores random features."],
        method=method, finetune_epochs=int(epochs) if method == "finetune" else 0,
    )


def _finite(value: float) -> float:
    return value if value is not None and not math.isnan(value) else -math.inf


def run_cut_search(
    config_files: str | Sequence[str],
    overrides: Mapping[str, Any] | None = None,
    *,
    limit: int | None = None,
    batch_size: int = 8,
    output_dir: str | os.PathLike | None = None,
    method: str = "probe",
    epochs: int = 3,
) -> CutSearchResult:
    """Run :func:`search_cut` with a bundle's data, preprocessing and network settings.

    The bundle config provides ``arch``, ``spatial_dims``, ``in_channels``, ``num_classes``, ``weights``, the
    training and validation datalists (``train#datalist``, ``validate#datalist``) and ``preprocessing_transforms``
    (no augmentation), so that the recommended cut can be passed straight back to that bundle as ``--cut``.

    Args:
        config_files: the bundle's ``train.json`` (and override files such as ``xray.json``).
        overrides: config values to override (``dataset_dir``, ``image_size``, ``weights`` ...).
        limit: at most this many images per split.
        batch_size: batch size of the feature extraction (and of the short finetunes).
        output_dir: where to write ``cut_search.md`` / ``.csv``; ``None`` writes nothing.
        method: ``"probe"`` or ``"finetune"`` (the bundle's ``learning_rate`` and ``seed``, ``epochs`` epochs per cut).
        epochs: epochs of each short finetune.

    Returns:
        The :class:`CutSearchResult`.
    """
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose

    parser = load_config(None, [config_files] if isinstance(config_files, (str, os.PathLike)) else list(config_files), overrides)
    get = parser.get_parsed_content
    net = TransferClassifier(get("arch"), spatial_dims=get("spatial_dims"), in_channels=get("in_channels"),
                             num_classes=get("num_classes"), cut=None, weights=get("weights"))
    transform = Compose(get("preprocessing_transforms"))
    loaders = []
    for key in ("train#datalist", "validate#datalist"):
        items = get(key)
        items = items[: int(limit)] if limit else items
        loaders.append(DataLoader(Dataset(items, transform), batch_size=batch_size, shuffle=False, num_workers=0))
    result = search_cut(net, loaders[0], loaders[1], method=method, epochs=epochs, lr=float(get("learning_rate")),
                        batch_size=batch_size, seed=int(get("seed")))
    if output_dir is not None:
        result.write(output_dir)
    return result
