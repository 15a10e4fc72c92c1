"""Profiling helper: parameters, multiply-accumulates, CPU latency and peak activation memory of a model."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["ModelProfile", "count_macs", "count_parameters", "peak_memory_bytes", "profile_model"]


@dataclass
class ModelProfile:
    """Figures for one model at one input shape.

    Attributes:
        params: number of parameters.
        macs: multiply-accumulates of one forward pass (convolutions and matrix products).
        latency_ms: median wall time of a forward pass over ``repeats`` runs.
        peak_mb: peak memory allocated by the CPU allocator during a forward pass (activations), in MiB.
        input_shape: the input shape used.
    """

    params: int
    macs: int
    latency_ms: float
    peak_mb: float
    input_shape: tuple[int, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass, from PyTorch's own FLOP counter (FLOPs / 2).

    The counter sees every operator the pass runs, so a 2.5D network (``lifting="slices"``) is counted over all its
    slabs, chunked or not (``chunk_slices`` runs them in several calls, all inside the pass), and an ACS network's
    three per-view convolutions are each counted at their own kernel size.
    """
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops() // 2)


def peak_memory_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes held by tensors allocated during one forward pass, from the PyTorch profiler's memory events."""
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(x)
    allocations = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in allocations:
        live += nbytes
        peak = max(peak, live)
    return int(peak)


def profile_model(
    model: nn.Module, input_shape: tuple[int, ...], repeats: int = 10, warmup: int = 2, memory: bool = True
) -> ModelProfile:
    """Measure a model on a random input of ``input_shape`` (batch included) on the CPU, in eval mode.

    Args:
        model: the model.
        input_shape: e.g. ``(1, 3, 224, 224)``.
        repeats: timed forward passes (the median is reported).
        warmup: untimed passes first.
        memory: whether to measure peak memory (one extra profiled pass).

    Returns:
        A :class:`ModelProfile`.
    """
    was_training = model.training
    model.eval()
    x = torch.randn(*input_shape)
    try:
        macs = count_macs(model, x)
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
        peak = peak_memory_bytes(model, x) if memory else 0
    finally:
        model.train(was_training)
    return ModelProfile(
        params=count_parameters(model),
        macs=macs,
        latency_ms=1000.0 * statistics.median(times),
        peak_mb=peak / 2**20,
        input_shape=tuple(input_shape),
    )
