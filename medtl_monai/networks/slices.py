"""2.5D lifting: a 2D ImageNet backbone run over the slices of a volume, its per-slice features aggregated.

A volume ``(B, C, x, y, z)`` (depth, the slice axis, last) becomes a stack of 2D images: one *slab* of ``slab``
neighbouring slices centred on every ``slice_stride``-th slice (``z = 0, s, 2s, ...``, so ``S = ceil(z / s)`` slabs;
the volume is edge-padded along depth so that every slab is full). A slab's ``C * slab`` values per pixel are the 2D
input channels, channel-major (``c * slab + j``): with 1-channel CT and ``slab=3``, three neighbouring slices are the
RGB input; with the bundle's three HU windows and ``slab=1``, the windows are.

:class:`SliceBackbone` runs the backbone's stages on the stack in chunks of ``chunk_slices`` 2D images and
average-pools each image's feature map, so that only ``(B, features, S)`` is kept per case. Chunking bounds memory:

- without gradients (inference, validation, export) a chunk's activations are freed before the next chunk;
- in training, each chunk runs under activation checkpointing (``torch.utils.checkpoint``): its activations are
  recomputed during the backward pass instead of being kept, for about one more forward pass of compute. The
  recomputation does not update BatchNorm running statistics a second time. BatchNorm normalises a chunk with the
  chunk's own statistics, like a micro-batch;
- with gradients in eval mode (CAMs) all slices run at once, so that hooks on a stage see one tensor.

:class:`SliceHead` aggregates the slice features over the slices (``"mean"``, ``"max"``, or ``"attention"``: the
gated attention pooling of Ilse et al., "Attention-based Deep Multiple Instance Learning", ICML 2018) and applies
the linear classifier. With every aggregator, a volume made of one slice repeated gives the 2D network's output on
that slice (the attention weights sum to 1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["SLICE_AGGREGATORS", "GatedAttentionPool", "SliceBackbone", "SliceHead", "check_slice_options",
           "slab_indices"]

SLICE_AGGREGATORS = ("mean", "max", "attention")


def check_slice_options(slab: int = 1, slice_stride: int = 1, aggregator: str = "mean", chunk_slices: int = 0) -> None:
    """Check the options of the slice lifting.

    Raises:
        ValueError: an even or non-positive ``slab``, a ``slice_stride`` below 1, a negative ``chunk_slices`` or an
            unknown ``aggregator``.
    """
    for name, value, low in (("slab", slab, 1), ("slice_stride", slice_stride, 1), ("chunk_slices", chunk_slices, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or int(value) < low:
            raise ValueError(f"{name}={value!r} must be an integer >= {low}.")
    if int(slab) % 2 == 0:
        raise ValueError(f"slab={slab!r} must be odd: a slab is centred on its slice.")
    if aggregator not in SLICE_AGGREGATORS:
        raise ValueError(f"aggregator={aggregator!r} is not supported; choose one of {SLICE_AGGREGATORS}.")


def slab_indices(depth: int, slab: int, stride: int, device: torch.device | None = None) -> torch.Tensor:
    """Slice indices of every slab: ``(S, slab)``, row ``i`` centred on slice ``i * stride``, clamped to the volume
    (edge padding)."""
    centres = torch.arange(0, depth, stride, device=device)
    offsets = torch.arange(slab, device=device) - slab // 2
    return (centres[:, None] + offsets[None, :]).clamp(0, depth - 1)


class SliceBackbone(nn.Sequential):
    """A 2D backbone of named stages applied to every slab of a volume; its output is ``(B, features, S)``.

    It is an ``nn.Sequential`` of the 2D stages (``stem``, ``layer1``, ...), so stage names, cuts, freezing and the
    state dict are those of the 2D backbone.

    Args:
        stages: the 2D stages, as for ``nn.Sequential`` (an ``OrderedDict`` or modules).
        slab: slices per 2D input (odd: a slab is centred on its slice).
        slice_stride: distance between the centres of consecutive slabs.
        chunk_slices: 2D images per backbone call (over the whole batch); ``0``: all at once.

    Raises:
        ValueError: an even or non-positive ``slab``, a ``slice_stride`` below 1 or a negative ``chunk_slices``.
    """

    __constants__ = ("slab", "slice_stride", "chunk_slices")

    def __init__(self, *stages: nn.Module | OrderedDict, slab: int = 1, slice_stride: int = 1,
                 chunk_slices: int = 0) -> None:
        super().__init__(*stages)
        check_slice_options(slab, slice_stride, "mean", chunk_slices)
        self.slab, self.slice_stride, self.chunk_slices = int(slab), int(slice_stride), int(chunk_slices)

    def num_slabs(self, depth: int) -> int:
        """Slabs taken from a volume of ``depth`` slices: ``ceil(depth / slice_stride)``."""
        return -(-int(depth) // self.slice_stride)

    def to_slabs(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, x, y, z)`` -> ``(B * S, C * slab, x, y)``, case-major (the slabs of case 0 first)."""
        b, c, h, w, depth = x.shape
        index = slab_indices(depth, self.slab, self.slice_stride, x.device)  # (S, slab)
        s = index.shape[0]
        slabs = torch.index_select(x, 4, index.reshape(-1)).reshape(b, c, h, w, s, self.slab)
        return slabs.permute(0, 4, 1, 5, 2, 3).reshape(b * s, c * self.slab, h, w)

    def _slab_images(self, x: torch.Tensor, index: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Images ``start:stop`` of :meth:`to_slabs`'s case-major stack, built from ``x`` alone, so that chunked
        inference never holds the whole stack (a copy of the volume, ``slab`` times over)."""
        c, h, w = x.shape[1], x.shape[2], x.shape[3]
        n = torch.arange(start, stop, device=x.device)
        by_slice = x.permute(0, 4, 1, 2, 3)  # (B, depth, C, x, y): a view
        images = by_slice[torch.div(n, index.shape[0], rounding_mode="floor")[:, None], index[n % index.shape[0]]]
        return images.permute(0, 2, 1, 3, 4).reshape(stop - start, c * self.slab, h, w)  # (k, slab, C, ..) -> (k, C*slab, ..)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The stages on a stack of 2D images, each feature map average-pooled: ``(N, features)``."""
        for stage in self:
            images = stage(images)
        return images.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            x = x.as_subclass(torch.Tensor)  # a MONAI MetaTensor's per-case metadata does not describe slabs
        index = slab_indices(x.shape[4], self.slab, self.slice_stride, x.device)  # (S, slab)
        n, chunk = x.shape[0] * index.shape[0], self.chunk_slices
        if torch.jit.is_tracing() or chunk <= 0 or chunk >= n or (torch.is_grad_enabled() and not self.training):
            features = self.encode(self.to_slabs(x))
        elif self.training and torch.is_grad_enabled():
            images = self.to_slabs(x)
            features = torch.cat([self._checkpointed(images[i:i + chunk]) for i in range(0, n, chunk)], 0)
        else:  # inference: each chunk's slabs are built when it runs
            features = torch.cat([self.encode(self._slab_images(x, index, i, min(i + chunk, n)))
                                  for i in range(0, n, chunk)], 0)
        return features.reshape(x.shape[0], -1, features.shape[1]).transpose(1, 2)

    @torch.jit.unused
    def _checkpointed(self, images):  # no annotations: TorchScript reads this signature and takes no strings here
        """:meth:`encode` on a tensor of images under activation checkpointing; the recomputation in backward leaves
        BatchNorm running statistics as the first pass left them. A frozen backbone (a linear probe) keeps no graph to
        bound, so it runs plainly."""
        if not images.requires_grad and not any(p.requires_grad for p in self.parameters()):
            return self.encode(images)
        calls = [0]

        def run(chunk: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            if calls[0] == 1:
                return self.encode(chunk)
            norms = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
            saved = [[t.clone() for t in (m.running_mean, m.running_var, m.num_batches_tracked)] for m in norms]
            try:  # the recomputation may stop early by raising, once it has what backward needs
                return self.encode(chunk)
            finally:
                with torch.no_grad():
                    for m, (mean, var, count) in zip(norms, saved):
                        m.running_mean.copy_(mean)
                        m.running_var.copy_(var)
                        m.num_batches_tracked.copy_(count)

        return checkpoint(run, images, use_reentrant=False)

    def assemble_slice_maps(self, maps: torch.Tensor, spatial_size: Sequence[int]) -> torch.Tensor:
        """Per-slab 2D maps (a stage's activations, or a CAM) as a volume in the input's voxel grid.

        Each map is resized in-plane (bilinear, as MONAI's CAM upsampler) and placed at its slab's centre slice;
        slices between two centres are interpolated linearly, slices after the last centre take its map. The result
        lies on the input's grid, so it is saved with the input's affine.

        Args:
            maps: ``(B * S, K, h, w)``, case-major, as the stages see them.
            spatial_size: the input's ``(x, y, z)``.

        Returns:
            ``(B, K, x, y, z)``.

        Raises:
            ValueError: ``maps`` is not a stack of ``B * S`` 2D maps for a volume of this depth.
        """
        x_size, y_size, depth = (int(v) for v in spatial_size)
        s = self.num_slabs(depth)
        if maps.dim() != 4 or maps.shape[0] % s:
            raise ValueError(f"maps of shape {tuple(maps.shape)} are not (B * {s}, K, h, w) slab maps for a depth of "
                             f"{depth} with slice_stride {self.slice_stride}.")
        resized = F.interpolate(maps, size=(x_size, y_size), mode="bilinear", align_corners=False)
        resized = resized.reshape(maps.shape[0] // s, s, maps.shape[1], x_size, y_size)
        return torch.einsum("bskxy,zs->bkxyz", resized, self._depth_weights(depth, s, maps))

    def _depth_weights(self, depth: int, s: int, like: torch.Tensor) -> torch.Tensor:
        """``(depth, S)`` linear interpolation weights from the slab centres to every slice."""
        z = torch.arange(depth, dtype=like.dtype, device=like.device)
        position = (z / self.slice_stride).clamp(max=s - 1)
        low = position.floor().long()
        high = (low + 1).clamp(max=s - 1)
        frac = position - low.to(like.dtype)
        weights = torch.zeros(depth, s, dtype=like.dtype, device=like.device)
        weights.scatter_add_(1, low[:, None], (1 - frac)[:, None])
        weights.scatter_add_(1, high[:, None], frac[:, None])
        return weights

    def extra_repr(self) -> str:
        return f"slab={self.slab}, slice_stride={self.slice_stride}, chunk_slices={self.chunk_slices}"


class GatedAttentionPool(nn.Module):
    """Gated attention pooling over instances (Ilse et al., ICML 2018, eq. 9):
    ``a_k = softmax_k(w^T (tanh(V h_k) * sigmoid(U h_k)))``, output ``sum_k a_k h_k``.

    Args:
        in_features: features per instance.
        hidden: width of ``V`` and ``U`` (the paper's ``L``, 128).
    """

    def __init__(self, in_features: int, hidden: int = 128) -> None:
        super().__init__()
        self.attention_v = nn.Linear(in_features, hidden)
        self.attention_u = nn.Linear(in_features, hidden)
        self.attention_w = nn.Linear(hidden, 1)

    def weights(self, features: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(B, S)`` (summing to 1 over the slices) of features ``(B, F, S)``."""
        h = features.transpose(1, 2)
        scores = self.attention_w(torch.tanh(self.attention_v(h)) * torch.sigmoid(self.attention_u(h)))
        return torch.softmax(scores.squeeze(-1), dim=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features * self.weights(features).unsqueeze(1)).sum(2)


class SliceHead(nn.Module):
    """Aggregation over the slices, optional dropout, and a linear layer (Kaiming-normal initialisation, as
    :class:`~medtl_monai.networks.ClassificationHead`, whose ``fc`` it shares the name of).

    Args:
        in_features: features per slice.
        num_classes: output logits.
        aggregator: ``"mean"``, ``"max"`` or ``"attention"`` (gated attention, :class:`GatedAttentionPool`).
        dropout: dropout probability before the linear layer.

    Raises:
        ValueError: an unknown aggregator, ``num_classes`` below 1 or ``dropout`` outside [0, 1).
    """

    def __init__(self, in_features: int, num_classes: int, aggregator: str = "mean", dropout: float = 0.0) -> None:
        super().__init__()
        check_slice_options(aggregator=aggregator)
        if int(num_classes) < 1:
            raise ValueError(f"num_classes={num_classes!r} must be a positive integer.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout={dropout!r} must be in [0, 1).")
        pools = {"mean": lambda: nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(1)),
                 "max": lambda: nn.Sequential(nn.AdaptiveMaxPool1d(1), nn.Flatten(1)),
                 "attention": lambda: GatedAttentionPool(in_features)}
        self.aggregate = pools[aggregator]()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)
        nn.init.kaiming_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` from slice features ``(B, F, S)``."""
        return self.fc(self.dropout(self.aggregate(features)))
