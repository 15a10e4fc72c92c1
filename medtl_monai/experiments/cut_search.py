"""Where to cut: TruncatedTL's cut-point search, scored on folds of the training split, with its uncertainty.

TruncatedTL (Peng et al., "Rethinking Transfer Learning for Medical Image Classification", BMVC 2023) searches the
cut hierarchically: first at block level (after ``layer1`` .. ``layer4``), then at layer level (after each residual
block / dense layer) around the best block. This module does the same, with three safeguards:

- **Training data only.** Every candidate is scored by K-fold cross-validation *inside the training split*
  (:func:`inner_folds`: folds grouped by patient when the items carry ``patient_id``, stratified by label): each fold
  trains on the other folds and is scored once on its own items. The validation and test splits are never read, so
  the bundle's validation split stays free for choosing the checkpoint and its test split for the one final report.
- **An estimate with its uncertainty.** Each cut gets the mean fold AUROC, its standard error (sample standard
  deviation over the folds / sqrt(n)) and n. A single validation score per cut, maximised over 10–20 cuts, is a
  winner's-curse estimate; the recommendation instead follows the *one-standard-error rule* (Breiman, Friedman,
  Olshen & Stone, "Classification and Regression Trees", 1984; Hastie, Tibshirani & Friedman, "The Elements of
  Statistical Learning", 2009, §7.10): the smallest cut whose mean is at least the best mean minus the best cut's
  standard error (:func:`one_standard_error_choice`).
- **The network the bundle trains.** :func:`run_cut_search` builds every candidate through the bundle's own
  ``network`` (``strategy_network`` + ``prepare_network``: its weights, inflation, dropout, ``init_from`` /
  ``init_head`` and the strategy's network policy), preprocesses with the bundle's ``preprocessing_transforms`` and
  trains with the strategy's rate rule (:func:`~medtl_monai.training.configure`).

Two methods score a cut on a fold. ``finetune`` (the default) truncates the network, gives it a new head and finetunes
it for a few epochs (Adam, class-weighted cross-entropy, no augmentation, images preprocessed once and cached), then
scores the held-out fold after the last epoch (no epoch is chosen on the data that scores it). ``probe`` is the cheap
proxy: a logistic-regression probe on the frozen backbone's pooled features at the cut; ONE forward pass of the full
backbone per image serves every cut (forward hooks on each residual block / dense layer). The probe measures linear
separability at a depth, not what finetuning adds: on the X-ray demo with proxy-pretrained ResNet-50 weights it
preferred a one-block network that finetuned far worse than the paper's TTL-2 cut (docs/benchmarks.md).

The short finetunes of a level are independent (:class:`FoldRun`: a cut and a held-out fold, seeded by itself):
:func:`run_cut_search` keeps each one's result in its own file under ``<output_dir>/runs/`` (a stopped search
resumes), runs them side by side in worker processes (``workers``, ``devices``), and :func:`plan_cut_search` lists a
level's finetunes for a cluster job array whose tasks each run one (``only``); ``collect`` builds the table from the
files (``scripts/find_cut.py --write_slurm`` / ``--collect``, docs/scaling.md). The table gives each cut's mean
AUROC with its standard error and its 95% Student's t interval over the folds (:func:`~.study.t_interval`).

With ``tracking="mlflow"``, :func:`run_cut_search` records each candidate cut as one MLflow run (named
``<level>_<cut>``, its fold scores as steps of ``fold_auroc`` / ``fold_auprc``) of one experiment in the bundle's
tracking store (``tracking_uri``: ``<bundle>/mlruns.db``). The candidates are finetuned outside the bundle's engines,
so MONAI's ``MLFlowHandler`` never sees them; they are logged with the MLflow client once the search is done
(:func:`~medtl_monai.training.log_mlflow_run`).
"""

from __future__ import annotations

import copy
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..bundle import load_config
from ..evaluation import classification_summary
from ..networks import (
    ClassificationHead,
    count_parameters,
    feature_channels,
    get_family,
    truncate_backbone,
)
from ..networks.profile import count_macs
from ..training import (
    atomic_torch_save,
    atomic_write_text,
    check_network,
    class_weights,
    configure,
    get_strategy,
    log_mlflow_run,
)
from .parallel import TaskPool, parse_devices
from .study import t_interval

__all__ = [
    "CUT_SEARCH_METHODS",
    "CutScore",
    "CutSearchResult",
    "FoldRun",
    "PendingFolds",
    "candidate_cuts",
    "extract_cut_features",
    "finetune_cut",
    "inner_folds",
    "linear_probe",
    "one_standard_error_choice",
    "plan_cut_search",
    "run_cut_search",
    "search_cut",
    "track_cut_search",
    "truncated_copy",
]

#: ``finetune`` (default): a short finetune per cut and fold; ``probe``: linear probe on frozen pooled features.
CUT_SEARCH_METHODS: tuple[str, ...] = ("finetune", "probe")


def _finite(values: Iterable[float]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(v)]


@dataclass
class CutScore:
    """One candidate cut, its fold scores and its cost.

    Attributes:
        cut: the cut as a bundle takes it (``--cut``): a stage name at block level, a layer count at layer level.
        blocks: the cut as a number of residual blocks / dense layers kept.
        level: ``"block"`` or ``"layer"``.
        where: human-readable position, e.g. ``"layer3 block 4/6"``.
        params: parameters of the candidate network (truncated backbone + head).
        macs: multiply-accumulates of one forward pass of one image.
        fold_auroc, fold_auprc: the held-out score of each fold.
        seconds: time spent on this cut: building it, and its folds' finetunes (or probes) summed, whichever
            process ran them.
    """

    cut: str | int
    blocks: int
    level: str
    where: str
    params: int
    macs: int
    fold_auroc: list[float]
    fold_auprc: list[float]
    seconds: float = 0.0

    @property
    def n(self) -> int:
        """Folds with a finite AUROC."""
        return len(_finite(self.fold_auroc))

    @property
    def auroc(self) -> float:
        """Mean held-out AUROC over the folds (NaN when no fold could be scored)."""
        values = _finite(self.fold_auroc)
        return statistics.fmean(values) if values else float("nan")

    @property
    def se(self) -> float:
        """Standard error of :attr:`auroc`: sample standard deviation / sqrt(n) (NaN for fewer than two folds)."""
        values = _finite(self.fold_auroc)
        return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")

    @property
    def auprc(self) -> float:
        """Mean held-out AUPRC over the folds."""
        values = _finite(self.fold_auprc)
        return statistics.fmean(values) if values else float("nan")

    @property
    def ci(self) -> tuple[float, float]:
        """95% Student's t interval of :attr:`auroc` over the folds (``n - 1`` degrees of freedom; NaN for fewer
        than two folds). Folds share training items, so it is a rough guide, as the standard error is."""
        _, low, high, _ = t_interval(self.fold_auroc)
        return low, high


@dataclass(frozen=True)
class FoldRun:
    """One short finetune of the search: a candidate cut trained on all folds but one and scored on that one.

    Attributes:
        index: its place in its level's run list (cut by cut, fold by fold): ``--only <level>:<index>``.
        level: ``"block"`` or ``"layer"``.
        cut, blocks: the candidate (as :class:`CutScore`).
        fold: the held-out fold.
        seed: the search's seed (the candidate's head is initialised with it, the fold's batch order with
            ``seed + fold``).
    """

    index: int
    level: str
    cut: str | int
    blocks: int
    fold: int
    seed: int

    @property
    def name(self) -> str:
        """``block_layer2/fold0``: its folder and file under ``runs/``."""
        return f"{self.level}_{self.cut}/fold{self.fold}"


#: ``run_folds(runs, candidates, (images, labels, fold_of))`` -> one ``(AUROC, AUPRC, seconds)`` per run.
RunFolds = Callable[[Sequence[FoldRun], Mapping[Any, nn.Module], tuple[torch.Tensor, torch.Tensor, np.ndarray]],
                    Sequence[tuple[float, float, float]]]


def one_standard_error_choice(scores: Sequence[CutScore]) -> tuple[CutScore, CutScore, float]:
    """The one-standard-error rule: the smallest cut whose mean score is within one standard error of the best.

    Breiman et al. (CART, 1984) and Hastie et al. (The Elements of Statistical Learning, 2009, §7.10): among models
    whose cross-validated score is no worse than the best model's minus its standard error, take the simplest; here
    the one with the fewest blocks kept (then the fewest parameters). The best is the highest mean (ties to the
    smaller network); a best cut without a standard error (one fold) makes the rule the arg-max.

    Args:
        scores: the scored cuts (at least one with a finite mean).

    Returns:
        ``(recommended, best, threshold)`` where ``threshold = best.auroc - best.se``.

    Raises:
        ValueError: no cut has a finite mean.
    """
    scored = [s for s in scores if not math.isnan(s.auroc)]
    if not scored:
        raise ValueError("no candidate cut could be scored (every fold's AUROC is undefined).")
    best = max(scored, key=lambda s: (s.auroc, -s.blocks, -s.params))
    threshold = best.auroc - (0.0 if math.isnan(best.se) else best.se)
    chosen = min((s for s in scored if s.auroc >= threshold), key=lambda s: (s.blocks, s.params))
    return chosen, best, threshold


@dataclass
class CutSearchResult:
    """Scores of every candidate cut, the recommendation and the cost.

    Attributes:
        arch: the architecture.
        scores: block-level scores, then layer-level ones (each network once: a layer cut at a stage end is the
            block cut already scored).
        best_block: the block-level cut with the best mean (the layer-level window is around it).
        best: the cut with the best mean overall.
        recommended: the cut the one-standard-error rule picks.
        threshold: best mean minus its standard error.
        method: ``"finetune"`` or ``"probe"``.
        folds: K, the number of folds of the training split.
        n_items: training items scored (every one is in exactly one held-out fold).
        n_groups: patients (or items, when there are no patient ids) the folds were drawn over.
        epochs: epochs of each short finetune (``method="finetune"``).
        loaded: ids of the items whose images the search loaded (training items only).
        forward_passes: batched forward calls of the full backbone (``method="probe"``).
        prepare_s: wall time of loading and preprocessing the images (and, for the probe, extracting features);
            score_s: of scoring every cut; total_s: of the search.
        settings: what was searched (strategy, weights, inflation, init_from, preprocessing ...).
        notes: warnings shown under the table.
    """

    arch: str
    scores: list[CutScore]
    best_block: str
    best: str | int
    recommended: str | int
    threshold: float
    method: str
    folds: int
    n_items: int
    n_groups: int
    epochs: int = 0
    loaded: list[str] = field(default_factory=list)
    forward_passes: int = 0
    prepare_s: float = 0.0
    score_s: float = 0.0
    total_s: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        """The result as Markdown: the table (recommended row in bold), the rule's arithmetic and the cost."""
        if self.method == "finetune":
            what = (f"a {self.epochs}-epoch finetune of each truncated network (new head, trained as the bundle's "
                    "strategy trains it), scored on the held-out fold after the last epoch")
        else:
            what = "a linear probe on the frozen, globally pooled features at each cut"
        lines = [
            (f"Cut-point search for {self.arch}: {what}. {self.folds}-fold cross-validation inside the TRAINING split "
             f"({self.n_items} images, {self.n_groups} patient groups; the validation and test splits are not read)."),
            "",
            ("| level | cut (`--cut`) | position | params (M) | MACs (G) | AUROC mean | SE | 95% CI (t, folds) | n | "
             "AUPRC mean | time (s) |"),
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in self.scores:
            star = "**" if s.cut == self.recommended else ""
            mark = " (best mean)" if s.cut == self.best else ""
            low, high = s.ci
            ci = "n/a" if math.isnan(low) else f"[{low:.3f}, {high:.3f}]"
            lines.append(f"| {s.level} | {star}{s.cut}{star}{mark} | {s.where} | {s.params / 1e6:.2f} | "
                         f"{s.macs / 1e9:.3f} | {s.auroc:.3f} | {s.se:.3f} | {ci} | {s.n} | {s.auprc:.3f} | "
                         f"{s.seconds:.1f} |")
        best = next(s for s in self.scores if s.cut == self.best)
        rule = (f"Best mean: `--cut {self.best}` (AUROC {best.auroc:.3f}, SE {best.se:.3f}). One-standard-error rule "
                f"(Breiman et al. 1984; Hastie et al. 2009, §7.10): the smallest cut with mean AUROC >= "
                f"{self.threshold:.3f}. Recommended: `--cut {self.recommended}`.")
        interval = ("The 95% CI is the Student's t interval of the mean over the folds (n - 1 degrees of freedom); "
                    "folds share training items, so it, like the SE, is a rough guide to how much the mean could move.")
        lines += ["", rule, "", interval, ""]
        n_runs = len(self.scores) * self.folds
        if self.method == "finetune":
            lines.append(f"Cost: {self.total_s:.1f} s wall ({self.prepare_s:.1f} s loading and preprocessing "
                         f"{len(self.loaded)} images once, {self.score_s:.1f} s for {n_runs} short finetunes: "
                         f"{len(self.scores)} cuts x {self.folds} folds x {self.epochs} epoch"
                         f"{'s' if self.epochs != 1 else ''}).")
        else:
            lines.append(f"Cost: {self.total_s:.1f} s wall ({self.prepare_s:.1f} s feature extraction: "
                         f"{len(self.loaded)} images through the full backbone in {self.forward_passes} batched forward "
                         f"passes, ONE pass per image serves every cut; {self.score_s:.2f} s for {n_runs} probes).")
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Everything, with each cut's mean, standard error and n, as JSON-ready values."""
        out = asdict(self)
        out["scores"] = [{**asdict(s), "auroc": s.auroc, "se": s.se, "ci_low": s.ci[0], "ci_high": s.ci[1], "n": s.n,
                          "auprc": s.auprc} for s in self.scores]
        return out

    def write(self, output_dir: str | os.PathLike, stem: str = "cut_search") -> tuple[Path, Path]:
        """Write ``<stem>.md`` and ``<stem>.json`` into ``output_dir``; return their paths."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        md, js = out / f"{stem}.md", out / f"{stem}.json"
        md.write_text(self.markdown() + "\n")
        js.write_text(json.dumps(self.to_dict(), indent=1, default=str, allow_nan=True) + "\n")
        return md, js


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


def inner_folds(items: Sequence[Mapping[str, Any]], folds: int = 3, *, seed: int = 0, patient_key: str = "patient_id",
                label_key: str = "label") -> list[int]:
    """Assign each training item to one of ``folds`` folds: patient-grouped, stratified by label, seeded.

    All items of a patient (``patient_key``, else the item's ``id``, else its position) share a fold. Patients are
    stratified by their most common label; within each stratum they are shuffled and dealt to the folds in turn,
    continuing where the previous stratum stopped, so fold sizes differ by at most one patient per stratum.

    Args:
        items: datalist items of the training split.
        folds: K (at least 2).
        seed: seed of the shuffle.
        patient_key, label_key: keys of the items.

    Returns:
        The fold index (0 .. K-1) of each item, in item order.

    Raises:
        ValueError: ``folds`` < 2 or more folds than patients.
    """
    k = int(folds)
    patients: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        pid = item.get(patient_key) or item.get("id") or f"#{i}"
        patients.setdefault(str(pid), []).append(i)
    if k < 2 or k > len(patients):
        raise ValueError(f"folds={folds!r} must be in 2..{len(patients)} (the training split has {len(patients)} "
                         "patients).")
    strata: dict[str, list[str]] = {}
    for pid, idx in patients.items():
        labels = [repr(items[i].get(label_key)) for i in idx]
        strata.setdefault(max(sorted(set(labels)), key=labels.count), []).append(pid)
    rng = np.random.default_rng(seed)
    fold_of_patient: dict[str, int] = {}
    dealt = 0
    for key in sorted(strata):
        members = sorted(strata[key])
        for j in rng.permutation(len(members)):
            fold_of_patient[members[j]] = dealt % k
            dealt += 1
    fold_of = [0] * len(items)
    for pid, idx in patients.items():
        for i in idx:
            fold_of[i] = fold_of_patient[pid]
    return fold_of


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
    """Multinomial logistic regression on standardised features (L-BFGS, L2 penalty); held-out probabilities.

    Args:
        train_x: (N, C) training features; train_y: (N,) class indices.
        val_x: (M, C) held-out features.
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


def truncated_copy(network: nn.Module, cut: str | int) -> nn.Module:
    """A copy of a full ``TransferClassifier`` truncated at ``cut``, with a new head (the network is left unchanged).

    Args:
        network: a ``TransferClassifier`` with the full backbone.
        cut: a stage name or a number of blocks kept.

    Returns:
        A ``TransferClassifier``-like model (``backbone``, ``head``, ``arch``) that the strategies can configure.

    Raises:
        ValueError: a 2.5D network (``lifting="slices"``), whose head is not a pooling head.
    """
    full = check_network(network)
    if getattr(full, "lifting", None) == "slices":
        raise ValueError("the cut search builds 3D or 2D heads; lifting='slices' (2.5D, a slice aggregator head) is not "
                         "supported: compare its cuts with the study (compare_strategies.py with --cut overrides).")
    spec = get_family(full.arch)
    blocks = _blocks_of(spec, cut)
    kept = copy.deepcopy(truncate_backbone(full.backbone, spec, blocks))  # copies the kept stages only
    head = ClassificationHead(feature_channels(kept), int(full.num_classes), full.spatial_dims,
                              float(getattr(full, "dropout", 0.0)))
    net = copy.deepcopy(full, memo={id(full.backbone): kept, id(full.head): head})
    net.cut = blocks
    return net


def _blocks_of(spec: Any, cut: str | int) -> int:
    if isinstance(cut, str):
        return int(np.cumsum(spec.blocks)[list(spec.block_stages).index(cut)])
    return int(cut)


def _cached(loader: Iterable, image_key: str, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every batch of a loader, concatenated: ``(images, labels)``."""
    batches = list(_batches(loader, image_key, label_key))
    if not batches:
        raise ValueError("the loader gave no batch.")
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def finetune_cut(
    network: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    held_out: tuple[torch.Tensor, torch.Tensor],
    *,
    strategy: str = "truncated",
    strategy_options: Mapping[str, Any] | None = None,
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 16,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """Finetune a copy of a candidate network briefly and score it once on held-out images.

    Args:
        network: the candidate (a truncated ``TransferClassifier`` with its new head); left unchanged.
        train: training ``(images, labels)`` (preprocessed, cached in memory).
        held_out: the held-out fold's ``(images, labels)``.
        strategy: the strategy whose rate rule trains it (:func:`~medtl_monai.training.configure`); a step-wise
            strategy trains every kept layer (its unfreezing schedule needs a validation split).
        strategy_options: ``frozen_stages``, ``pretrained_lr_ratio``, ``stage_lrs`` ... for ``configure``.
        epochs: training epochs (Adam, class-weighted cross-entropy).
        lr: the learning rate (the head's; the strategy's rule derives the others).
        batch_size: training batch size.
        seed: seed of the batch order.
        device: where to train.

    Returns:
        ``(AUROC, AUPRC)`` on the held-out images after the last epoch (no epoch is chosen on them).
    """
    model = copy.deepcopy(check_network(network)).to(device)
    entry = get_strategy(strategy)
    groups = configure(model, "truncated" if entry.stepwise else entry.name, lr, **dict(strategy_options or {}))
    x, y = train
    num_classes = int(model.num_classes)
    weight = class_weights([{"label": int(v)} for v in y], num_classes).to(device)
    optimizer = torch.optim.Adam(groups, lr=lr)
    order = torch.Generator().manual_seed(int(seed))
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
        probs = torch.cat([torch.softmax(model(v.to(device)), 1).cpu() for v in held_out[0].split(int(batch_size))])
    summary = classification_summary(probs.numpy(), held_out[1].numpy())
    return float(summary["auroc"]), float(summary["auprc"])


def _layer_window(ends: Sequence[int], best_block: int) -> range:
    """Layer-level cuts around block cut number ``best_block``: inside its stage and the stage after it."""
    low = ends[best_block - 1] if best_block > 0 else 0
    high = ends[min(best_block + 1, len(ends) - 1)]
    return range(int(low) + 1, int(high) + 1)


def _check_folds(y: torch.Tensor, fold_of: np.ndarray, folds: int) -> None:
    for f in range(folds):
        for name, part in (("held-out", y[torch.as_tensor(fold_of == f)]), ("training", y[torch.as_tensor(fold_of != f)])):
            if len(torch.unique(part)) < 2:
                raise ValueError(f"fold {f}: its {name} part holds one class only ({len(part)} images); use fewer "
                                 "folds or more training data.")


def search_cut(
    network: nn.Module,
    loader: Iterable,
    *,
    method: str = "finetune",
    folds: int = 3,
    fold_of: Sequence[int] | None = None,
    build: Callable[[str | int], nn.Module] | None = None,
    strategy: str = "truncated",
    strategy_options: Mapping[str, Any] | None = None,
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 16,
    seed: int = 0,
    l2: float = 1e-2,
    device: str | torch.device = "cpu",
    image_key: str = "image",
    label_key: str = "label",
    pretrained: bool | None = None,
    run_folds: RunFolds | None = None,
    cached: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> CutSearchResult:
    """Score block-level cuts, then layer-level cuts around the best block, on K folds of the training data.

    The layer-level window is every layer cut inside the best block's stage and the stage after it (the cuts just
    before and just after the best block end); a layer cut at a stage end is the block cut already scored.

    Args:
        network: the bundle's network: a ``TransferClassifier`` (full backbone for ``probe`` and when ``build`` is
            ``None``; otherwise any cut: only its architecture, classes and weights are read).
        loader: the TRAINING items' batches (preprocessed, not augmented), in a fixed order.
        method: ``"finetune"`` (:func:`finetune_cut` per cut and fold) or ``"probe"`` (:func:`linear_probe`).
        folds: K.
        fold_of: the fold of each item in loader order (:func:`inner_folds`; default: stratified by label only).
        build: ``build(cut)`` returns the candidate network at ``cut`` as the bundle builds it; default
            :func:`truncated_copy` of ``network``.
        strategy, strategy_options: how a candidate trains (``method="finetune"``; see :func:`finetune_cut`).
        epochs, lr, batch_size: the short finetunes.
        seed: seed of the head initialisations and of the batch order.
        l2: probe penalty (``method="probe"``).
        device: where to run.
        image_key, label_key: keys of dict batches.
        pretrained: whether the candidates start from pretrained weights (default: ``network`` has a weights source).
        run_folds: ``method="finetune"``: how a level's short finetunes run, ``run_folds(runs, candidates, (x, y,
            fold_of))`` returning ``(AUROC, AUPRC, seconds)`` per :class:`FoldRun` (default: here, one after another;
            :func:`run_cut_search` passes one that resumes from and writes to run folders, in worker processes).
        cached: the training images and labels already loaded (``loader`` is then not read for ``finetune``).

    Returns:
        A :class:`CutSearchResult`.

    Raises:
        ValueError: an unknown method, a network that is not full where one is needed, or a fold without both
            classes.
    """
    if method not in CUT_SEARCH_METHODS:
        raise ValueError(f"method={method!r} is unknown; choose one of {list(CUT_SEARCH_METHODS)}.")
    start = time.perf_counter()
    net = check_network(network)
    spec = get_family(net.arch)
    if method == "probe" or build is None:
        _require_full_backbone(net, spec)
    build = build or (lambda cut: truncated_copy(net, cut))
    num_classes = int(net.num_classes)
    passes = 0
    if method == "probe":
        first: list[torch.Tensor] = []
        features, y, passes = extract_cut_features(net, _remember_first(loader, first, image_key), image_key=image_key,
                                                   label_key=label_key, device=device)
        sample = first[0]
    else:
        x, y = cached if cached is not None else _cached(loader, image_key, label_key)
        sample = x[:1]
    k = int(folds)
    fold_of = np.asarray(fold_of if fold_of is not None else
                         inner_folds([{"label": int(v)} for v in y], k, seed=seed))
    if len(fold_of) != len(y):
        raise ValueError(f"fold_of has {len(fold_of)} entries for {len(y)} items.")
    _check_folds(y, fold_of, k)
    prepare_s = time.perf_counter() - start

    def run_here(runs: Sequence[FoldRun], candidates: Mapping[str | int, nn.Module], data: Any) -> list[tuple]:
        return [finetune_fold(candidates[run.cut], data, run, strategy=strategy, strategy_options=strategy_options,
                              epochs=epochs, lr=lr, batch_size=batch_size, device=device) for run in runs]

    def probe_folds(blocks: int) -> tuple[list[float], list[float]]:
        aurocs, auprcs = [], []
        for f in range(k):
            tr, ho = torch.as_tensor(fold_of != f), torch.as_tensor(fold_of == f)
            probs = linear_probe(features[blocks][tr], y[tr], features[blocks][ho], num_classes, l2=l2)
            summary = classification_summary(probs, y[ho].numpy())
            aurocs.append(float(summary["auroc"]))
            auprcs.append(float(summary["auprc"]))
        return aurocs, auprcs

    def make(cut: str | int) -> nn.Module:
        torch.manual_seed(seed)  # the same head initialisation for a cut, whatever was built or scored before
        return build(cut) if method == "finetune" else truncated_copy(net, cut)

    def score_level(cuts: Sequence[tuple[str | int, int, str, str]]) -> list[CutScore]:
        """Score the cuts ``(cut, blocks, level, where)`` of one level: every fold of every cut, then each
        candidate's cost (candidates are built when first needed: a job-array task builds one)."""
        candidates = _Candidates(make)
        fold_results: dict[Any, list[tuple[float, float, float]]] = {cut: [] for cut, *_ in cuts}
        if method == "finetune":
            runs = [FoldRun(i * k + f, level, cut, blocks, f, int(seed))
                    for i, (cut, blocks, level, _) in enumerate(cuts) for f in range(k)]
            for run, result in zip(runs, (run_folds or run_here)(runs, candidates, (x, y, fold_of))):
                fold_results[run.cut].append(result)
        scores = []
        for cut, blocks, level, where in cuts:
            t0 = time.perf_counter()
            candidate = candidates[cut]
            macs = count_macs(candidate.eval(), sample.to(next(candidate.parameters()).device))
            if method == "probe":
                aurocs, auprcs = probe_folds(blocks)
            else:
                aurocs, auprcs = [r[0] for r in fold_results[cut]], [r[1] for r in fold_results[cut]]
            seconds = time.perf_counter() - t0 + sum(r[2] for r in fold_results[cut])
            scores.append(CutScore(cut, blocks, level, where, count_parameters(candidate), macs, aurocs, auprcs, seconds))
        return scores

    t0 = time.perf_counter()
    ends = [int(e) for e in np.cumsum(spec.blocks)]
    block_scores = score_level([(stage, end, "block", f"end of {stage}") for stage, end in zip(spec.block_stages, ends)])
    best_block = max(block_scores, key=lambda s: (_or_low(s.auroc), -s.blocks))
    positions = {blocks: where for blocks, _, where in candidate_cuts(spec.name)}
    window = [b for b in _layer_window(ends, block_scores.index(best_block)) if b not in ends]
    layer_scores = score_level([(b, b, "layer", positions[b]) for b in window])
    score_s = time.perf_counter() - t0
    scores = block_scores + layer_scores
    chosen, best, threshold = one_standard_error_choice(scores)
    is_pretrained = bool(getattr(net, "weights_source", None)) if pretrained is None else pretrained
    notes = [] if is_pretrained else \
        ["the backbone has NO pretrained weights (random initialisation): the search scores random features."]
    if method == "finetune" and get_strategy(strategy).stepwise:
        notes.append(f"strategy {strategy!r} unfreezes stages step-wise on the validation split; the short finetunes "
                     "train every kept layer at the learning rate instead.")
    return CutSearchResult(
        arch=spec.name, scores=scores, best_block=str(best_block.cut), best=best.cut, recommended=chosen.cut,
        threshold=threshold, method=method, folds=k, n_items=len(y), n_groups=len(y), epochs=int(epochs) if
        method == "finetune" else 0, forward_passes=passes, prepare_s=prepare_s, score_s=score_s,
        total_s=time.perf_counter() - start, notes=notes,
    )


def finetune_fold(candidate: nn.Module, data: tuple[torch.Tensor, torch.Tensor, np.ndarray], run: FoldRun, *,
                  device: str | torch.device = "cpu", **finetune: Any) -> tuple[float, float, float]:
    """One :class:`FoldRun`: :func:`finetune_cut` of ``candidate`` on every fold but ``run.fold``, scored on it.

    The finetune is seeded by the run alone (``seed + fold``), so it gives the same result in any process and order.

    Args:
        candidate: the candidate network (built with ``torch.manual_seed(run.seed)``).
        data: ``(images, labels, fold of each image)``.
        run: the run.
        device: where to train.
        finetune: ``strategy``, ``strategy_options``, ``epochs``, ``lr``, ``batch_size`` of :func:`finetune_cut`.

    Returns:
        ``(AUROC, AUPRC, seconds)``.
    """
    x, y, fold_of = data
    fold_of = np.asarray(fold_of)
    t0 = time.perf_counter()
    tr, ho = torch.as_tensor(fold_of != run.fold), torch.as_tensor(fold_of == run.fold)
    torch.manual_seed(run.seed + run.fold)
    a, p = finetune_cut(candidate, (x[tr], y[tr]), (x[ho], y[ho]), seed=run.seed + run.fold, device=device, **finetune)
    return float(a), float(p), time.perf_counter() - t0


class _Candidates(dict):
    """Candidate networks by cut, each built (by ``make(cut)``) when first asked for."""

    def __init__(self, make: Callable[[Any], nn.Module]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, cut: Any) -> nn.Module:
        self[cut] = network = self.make(cut)
        return network


class PendingFolds(Exception):
    """A search stopped before a level whose short finetunes are not all done (:func:`plan_cut_search`, or
    ``only`` that ran its one finetune).

    Attributes:
        level: ``"block"`` or ``"layer"``.
        runs: that level's unfinished :class:`FoldRun` s.
    """

    def __init__(self, level: str, runs: Sequence[FoldRun]) -> None:
        super().__init__(f"{len(runs)} short finetunes of the {level} level are not done")
        self.level, self.runs = level, list(runs)


_LEVELS = ("block", "layer")
_PREPARED: dict[str, tuple[torch.Tensor, torch.Tensor, np.ndarray]] = {}  # a worker's loaded images, by file


def _read_fold(path: Path) -> tuple[float, float, float] | None:
    """A finished fold's ``(AUROC, AUPRC, seconds)``; ``None`` when its file is missing or incomplete."""
    try:
        doc = json.loads(path.read_text())
        return float(doc["auroc"]), float(doc["auprc"]), float(doc["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_fold(path: Path, run: FoldRun, result: tuple[float, float, float]) -> None:
    doc = {"level": run.level, "cut": run.cut, "fold": run.fold, "seed": run.seed, "auroc": result[0],
           "auprc": result[1], "seconds": result[2]}
    atomic_write_text(json.dumps(doc, allow_nan=True) + "\n", path)


@dataclass(frozen=True)
class _FoldTask:
    """What a worker process needs for one fold run (picklable): the bundle's configs and the prepared images."""

    run: FoldRun
    config_files: tuple[str, ...]
    overrides: dict
    finetune: dict
    prepared: str
    result: str
    device: str

    def __str__(self) -> str:
        return self.run.name


def _run_fold_task(task: _FoldTask, device: str | None) -> tuple[float, float, float]:
    """A worker's entry point: build the candidate as the bundle builds it, finetune, write the fold's file."""
    device = device or task.device
    if task.prepared not in _PREPARED:
        doc = torch.load(task.prepared, weights_only=True)
        _PREPARED.clear()
        _PREPARED[task.prepared] = (doc["images"], doc["labels"], doc["fold_of"].numpy())
    torch.manual_seed(task.run.seed)
    candidate = load_config(None, list(task.config_files),
                            {**task.overrides, "cut": task.run.cut, "device": device}).get_parsed_content("network")
    result = finetune_fold(candidate, _PREPARED[task.prepared], task.run, device=device, **task.finetune)
    _write_fold(Path(task.result), task.run, result)
    return result


class _FoldFiles:
    """The :data:`RunFolds` of :func:`run_cut_search`: each fold's result in ``<folder>/<level>_<cut>/fold<k>.json``;
    finished folds are read back, the others run here or in worker processes (or, when planning, are reported)."""

    def __init__(self, folder: Path, config_files: Sequence[str], overrides: Mapping[str, Any],
                 finetune: Mapping[str, Any], device: str, *, pool: TaskPool, mode: str = "run",
                 only: tuple[str, int] | None = None, ids: Sequence[str] = ()) -> None:
        self.folder, self.config_files, self.overrides = folder, tuple(config_files), dict(overrides)
        self.finetune, self.device, self.pool = dict(finetune), str(device), pool
        self.mode, self.only, self.ids = mode, only, list(ids)
        self.prepared = folder / "prepared.pt"

    def save_prepared(self, data: tuple[torch.Tensor, torch.Tensor, np.ndarray]) -> None:
        """The preprocessed training images, labels and folds, for worker processes and the tasks of a job array."""
        x, y, fold_of = data
        atomic_torch_save({"images": x, "labels": y, "fold_of": torch.as_tensor(np.asarray(fold_of)),
                           "ids": list(self.ids)}, self.prepared)

    def __call__(self, runs: Sequence[FoldRun], candidates: Mapping[Any, nn.Module],
                 data: tuple[torch.Tensor, torch.Tensor, np.ndarray]) -> list[tuple[float, float, float]]:
        if not runs:
            return []
        level = runs[0].level
        results = {run.index: _read_fold(self.folder / f"{run.name}.json") for run in runs}
        pending = [run for run in runs if results[run.index] is None]
        if pending and self.mode == "collect":
            raise FileNotFoundError(f"{self.folder}: {len(pending)} short finetunes of the {level} level are not done: "
                                    + ", ".join(f"{level}:{r.index} ({r.name})" for r in pending))
        if pending and self.mode == "plan":
            self.save_prepared(data)
            raise PendingFolds(level, pending)
        if pending and self.only is not None:
            only_level, index = self.only
            if _LEVELS.index(level) < _LEVELS.index(only_level):
                raise RuntimeError(f"--only {only_level}:{index}: the {level} level is not finished ({len(pending)} "
                                   "short finetunes to go); its job array must finish first.")
            if level != only_level:
                raise PendingFolds(level, pending)
            if not any(r.index == index for r in runs):
                raise ValueError(f"--only {only_level}:{index}: the {level} level has runs 0..{len(runs) - 1}.")
            pending = [r for r in pending if r.index == index]
        if pending and not self.pool.in_process:
            self.save_prepared(data)
            tasks = [_FoldTask(run, self.config_files, self.overrides, self.finetune, str(self.prepared),
                               str(self.folder / f"{run.name}.json"), self.device) for run in pending]
            for run, result in zip(pending, self.pool.run(_run_fold_task, tasks)):
                results[run.index] = result
        else:
            for run in pending:
                results[run.index] = finetune_fold(candidates[run.cut], data, run, device=self.device, **self.finetune)
                _write_fold(self.folder / f"{run.name}.json", run, results[run.index])
        still = [run for run in runs if results[run.index] is None]
        if still:  # --only ran its one finetune; the level's others are for other tasks
            raise PendingFolds(level, still)
        return [results[run.index] for run in runs]


def _or_low(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _remember_first(loader: Iterable, store: list[torch.Tensor], image_key: str) -> Iterable:
    """Pass a loader's batches on, keeping the first image (batch of one) in ``store``."""
    for batch in loader:
        if not store:
            x = batch[image_key] if isinstance(batch, Mapping) else batch[0]
            store.append((x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x))[:1].float())
        yield batch


class _Seen:
    """A transform that records the id of every item it sees (what the search loaded), then passes it on."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, item: Mapping[str, Any]) -> Mapping[str, Any]:
        self.ids.append(str(item.get("id") or item.get("image")))
        return item


def run_cut_search(
    config_files: str | os.PathLike | Sequence[str | os.PathLike],
    overrides: Mapping[str, Any] | None = None,
    *,
    method: str = "finetune",
    folds: int = 3,
    epochs: int = 3,
    limit: int | None = None,
    batch_size: int = 8,
    output_dir: str | os.PathLike | None = None,
    patient_key: str = "patient_id",
    tracking: str | None = None,
    experiment_name: str | None = None,
    workers: int = 1,
    devices: str | Sequence[str] | None = None,
    only: str | None = None,
    collect: bool = False,
    _plan: bool = False,
) -> CutSearchResult:
    """Run :func:`search_cut` on a bundle's training split, with the network and preprocessing the bundle trains.

    Everything comes from the bundle's configs, read through :func:`~medtl_monai.bundle.load_config`: the training
    items (``train#datalist``; the validation and test splits are never read), the preprocessing
    (``preprocessing_transforms``, no augmentation), and each candidate network, built by the bundle's own
    ``network`` with ``cut`` set to the candidate (so its weights, inflation, dropout, ``init_from`` / ``init_head``
    and the strategy's network policy are the bundle's), trained with the bundle's ``strategy``, ``learning_rate``,
    ``frozen_stages``, ``pretrained_lr_ratio``, ``stage_lrs`` and ``seed``. The recommended cut can be passed
    straight back to the bundle as ``--cut``.

    With ``output_dir``, the short finetunes (``method="finetune"``) keep their state in ``<output_dir>/runs/``: the
    search's settings (``search.json``; another search's folder is refused), each fold's result
    (``<level>_<cut>/fold<k>.json``, read back instead of trained again: a stopped search resumes) and, when other
    processes need them, the preprocessed images (``prepared.pt``). The finetunes of a level are independent: with
    ``workers`` (CPU processes sharing the cores) or ``devices`` (one process per GPU) they run side by side; each is
    seeded by itself, so the result does not depend on where it ran. On a cluster, :func:`plan_cut_search` lists a
    level's finetunes for a job array whose tasks each run one (``only``); ``collect`` then builds the result.

    Args:
        config_files: the bundle's ``train.json`` (and override files such as ``xray.json``).
        overrides: config values to override (``dataset_dir``, ``image_size``, ``weights`` ...).
        method: ``"finetune"`` or ``"probe"``.
        folds: K, folds of the training split (grouped by ``patient_key``).
        epochs: epochs of each short finetune.
        limit: at most this many training items.
        batch_size: batch size of loading and of the short finetunes.
        output_dir: where to write ``cut_search.md`` / ``.json``; ``None`` writes nothing.
        patient_key: the items' patient id key.
        tracking: ``"mlflow"``: record every candidate cut as an MLflow run (:func:`track_cut_search`) in the
            bundle's ``tracking_uri``; ``None``: no tracking.
        experiment_name: the MLflow experiment (default: an ``experiment_name`` override, else the name of
            ``output_dir``, else ``cut_search``).
        workers: CPU worker processes for the short finetunes (each with ``cores // workers`` torch threads).
        devices: one worker per device (``"cuda:0,cuda:1"``), instead of ``workers``.
        only: ``"<level>:<index>"``: run that one short finetune of the level (a job-array task) and stop
            (:class:`PendingFolds`) while the level has others to do.
        collect: run nothing; build the result from the finished folds (``FileNotFoundError`` names missing ones).

    Returns:
        The :class:`CutSearchResult`.

    Raises:
        ValueError: the bundle's strategy does not use the cut (``full``, ``linear``, ``transfusion``,
            ``lwft_full``), an unknown ``tracking``, ``workers``/``devices``/``only``/``collect`` without
            ``output_dir`` or with ``method="probe"``, ``output_dir`` holding another search, or see
            :func:`search_cut`.
        PendingFolds: with ``only``, the level has other finetunes to do (or the next level has not started).
        ImportError: ``tracking`` without the ``mlflow`` package.
    """
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose

    if tracking not in (None, "mlflow"):
        raise ValueError(f"tracking={tracking!r} is unknown; the cut search tracks with 'mlflow' only.")
    files = [config_files] if isinstance(config_files, (str, os.PathLike)) else list(config_files)
    base = {**dict(overrides or {}), "distributed": False, "channels_last": False}
    parser = load_config(None, files, base)
    get = parser.get_parsed_content
    entry = get_strategy(get("strategy"))
    if entry.network != "cut":
        raise ValueError(f"{files[0]}: strategy {entry.name!r} trains the {entry.network} network, which has no cut; "
                         "search the cut with a strategy that uses it (e.g. --strategy truncated).")
    spec = get_family(get("arch"))

    def build(cut: str | int | None) -> nn.Module:
        return load_config(None, files, {**base, "cut": cut}).get_parsed_content("network")

    items = list(get("train#datalist"))
    items = items[: int(limit)] if limit else items
    seed = int(get("seed"))
    fold_of = inner_folds(items, folds, seed=seed, patient_key=patient_key)
    seen = _Seen()
    preprocessing = get("preprocessing_transforms")
    transform = Compose([seen, *preprocessing])
    loader = DataLoader(Dataset(items, transform), batch_size=batch_size, shuffle=False, num_workers=0)
    network = build(None) if method == "probe" else build(spec.block_stages[0])
    options = {key: get(key, default=None) for key in ("frozen_stages", "pretrained_lr_ratio", "stage_lrs")}
    strategy_options = {k: v for k, v in options.items() if v is not None}
    init_from = get("init_from", default=None)
    weights = get("weights", default=None)
    lr = float(get("learning_rate"))
    device_list = parse_devices(devices)
    scaled = int(workers) > 1 or bool(device_list) or only is not None or collect or _plan
    if scaled and (output_dir is None or method != "finetune"):
        raise ValueError("workers, devices, only and collect need output_dir and method='finetune' (the probe "
                         "search is one pass over the images).")
    run_folds, cached, load_s = None, None, 0.0
    pool = TaskPool(int(workers), device_list)
    if output_dir is not None and method == "finetune":
        folder = Path(output_dir) / "runs"
        _check_search_settings(folder, {
            "config_files": [str(f) for f in files], "overrides": {k: str(v) for k, v in (overrides or {}).items()},
            "method": method, "folds": int(folds), "epochs": int(epochs), "limit": limit, "batch_size": int(batch_size),
            "patient_key": patient_key})
        run_folds = _FoldFiles(folder, [str(f) for f in files], base,
                               {"strategy": entry.name, "strategy_options": strategy_options, "epochs": int(epochs),
                                "lr": lr, "batch_size": int(batch_size)}, str(get("device")), pool=pool,
                               mode="collect" if collect else "plan" if _plan else "run", only=_parse_only(only))
        t0 = time.perf_counter()
        if run_folds.prepared.is_file():  # the images this search prepared before (a job-array task, a resume)
            doc = torch.load(run_folds.prepared, weights_only=True)
            cached, seen.ids = (doc["images"], doc["labels"]), list(doc["ids"])
        else:
            cached = _cached(loader, "image", "label")
        run_folds.ids, load_s = list(seen.ids), time.perf_counter() - t0
    with pool:
        result = search_cut(network, loader, method=method, folds=folds, fold_of=fold_of, build=build,
                            strategy=entry.name, strategy_options=strategy_options, epochs=epochs, lr=lr,
                            batch_size=batch_size, seed=seed, device=get("device"),
                            pretrained=bool(weights) and entry.pretrained or bool(init_from), run_folds=run_folds,
                            cached=cached)
    result.loaded = list(seen.ids)
    result.prepare_s += load_s
    result.total_s += load_s
    result.n_groups = len({str(i.get(patient_key) or i.get("id") or n) for n, i in enumerate(items)})
    result.settings = {
        "config_files": [str(f) for f in files], "overrides": {k: str(v) for k, v in (overrides or {}).items()},
        "strategy": entry.name, "arch": spec.name, "weights": str(weights) if weights else None,
        "inflation": get("inflation", default=None), "dropout": get("dropout", default=None),
        "init_from": str(init_from) if init_from else None, "init_head": get("init_head", default=None),
        "preprocessing": getattr(preprocessing, "config", None),
        "learning_rate": float(get("learning_rate")), "seed": seed, "folds": int(folds), "epochs": int(epochs),
        "strategy_options": options,
    }
    reports: tuple[Path, ...] = ()
    if output_dir is not None:
        reports = result.write(output_dir)
    if tracking is not None:
        name = experiment_name or (overrides or {}).get("experiment_name") or \
            (Path(output_dir).resolve().name if output_dir is not None else "cut_search")
        track_cut_search(result, get("tracking_uri"), str(name), reports=reports)
    return result


def plan_cut_search(config_files: str | os.PathLike | Sequence[str | os.PathLike],
                    overrides: Mapping[str, Any] | None = None, *, output_dir: str | os.PathLike,
                    **kwargs: Any) -> tuple[str | None, list[FoldRun]]:
    """The short finetunes a job array should run next: those of the first level that is not finished.

    Runs :func:`run_cut_search` without training (it prepares the images once and saves them for the array's
    tasks): the block level's finetunes first; once they are all done (collected from their files), the layer
    level's, whose cuts depend on the best block.

    Args:
        config_files, overrides, output_dir: as :func:`run_cut_search`.
        kwargs: its other arguments (``folds``, ``epochs``, ``limit``, ``batch_size``, ``patient_key``).

    Returns:
        ``(level, runs)``; ``(None, [])`` when every finetune is done (build the result with ``collect``).
    """
    try:
        run_cut_search(config_files, overrides, output_dir=output_dir, _plan=True, **kwargs)
    except PendingFolds as pending:
        return pending.level, pending.runs
    return None, []


def _parse_only(only: str | None) -> tuple[str, int] | None:
    """``"layer:3"`` as ``("layer", 3)``."""
    if only is None:
        return None
    level, _, index = str(only).partition(":")
    if level not in _LEVELS or not index.strip().isdigit():
        raise ValueError(f"only={only!r} must be <level>:<index> with level one of {list(_LEVELS)}, e.g. block:0.")
    return level, int(index)


def _check_search_settings(folder: Path, settings: Mapping[str, Any]) -> None:
    """Record the search's settings in ``<folder>/search.json``; refuse a folder another search's results are in."""
    path = folder / "search.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        changed = [f"{k}: {saved.get(k)!r} -> {settings.get(k)!r}" for k in sorted(set(saved) | set(settings))
                   if saved.get(k) != settings.get(k)]
        if changed:
            raise ValueError(f"{path}: this folder holds the finetunes of another search ({'; '.join(changed)}); "
                             "choose another --report_dir, or delete its runs/ folder to start over.")
        return
    atomic_write_text(json.dumps(dict(settings), indent=1) + "\n", path)


def track_cut_search(result: CutSearchResult, tracking_uri: str, experiment_name: str,
                     reports: Sequence[str | os.PathLike] = ()) -> list[str]:
    """Record each candidate cut of a finished search as one MLflow run of ``experiment_name``.

    A run is named ``<level>_<cut>`` (``block_layer2``, ``layer_11``); its params are the cut (``cut``, ``blocks``,
    ``level``, ``where``) and the search's settings, its metrics the fold scores as steps (``fold_auroc``,
    ``fold_auprc``), their mean (``auroc``, ``auprc``), ``auroc_se``, ``params``, ``macs`` and ``seconds``; its tags
    say whether it is the recommended cut or the best mean. The report files are attached to the recommended cut.

    Args:
        result: the search's result.
        tracking_uri: the MLflow tracking URI (the bundle's ``tracking_uri``).
        experiment_name: the experiment (created when missing).
        reports: ``cut_search.md`` / ``.json``.

    Returns:
        The MLflow run ids, in the order of :attr:`CutSearchResult.scores`.

    Raises:
        ImportError: the ``mlflow`` package is not installed.
    """
    common = {"arch": result.arch, "method": result.method, "folds": result.folds, "epochs": result.epochs,
              "n_items": result.n_items, **{k: v for k, v in result.settings.items() if k not in ("overrides", "arch")}}
    ids = []
    for score in result.scores:
        metrics = {"fold_auroc": score.fold_auroc, "fold_auprc": score.fold_auprc, "auroc": score.auroc,
                   "auroc_se": score.se, "auprc": score.auprc, "params": score.params, "macs": score.macs,
                   "seconds": score.seconds}
        tags = {"recommended": score.cut == result.recommended, "best_mean": score.cut == result.best}
        ids.append(log_mlflow_run(
            tracking_uri, experiment_name, f"{score.level}_{score.cut}", metrics=metrics, tags=tags,
            params={**common, "cut": score.cut, "blocks": score.blocks, "level": score.level, "where": score.where},
            artifacts=reports if score.cut == result.recommended else ()))
    return ids
