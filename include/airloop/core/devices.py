"""Devices: which compute device training uses on this worker, and why.

``AIRLOOP_GPU_POLICY`` decides what training does on a worker without a usable GPU:
``fallback`` (default: train on the CPU and record ``device="cpu"`` with the reason),
``fail`` (raise :class:`GpuUnavailable`) or ``cpu`` (never use a GPU). Where a task runs
(pools, queues, executors) is :mod:`airloop.deploy.routing`'s business. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

GPU_POLICIES = ("fallback", "fail", "cpu")


class GpuUnavailable(RuntimeError):
    """Training was asked to use a GPU, none is usable, and the policy says fail."""


@dataclass(frozen=True)
class GpuProbe:
    """What this worker can see: ``available`` with ``count`` GPUs, else the ``reason``."""

    available: bool
    count: int
    reason: str


@dataclass(frozen=True)
class DeviceChoice:
    """The device a training run uses and why (both recorded in the registry)."""

    device: str  # "cuda" or "cpu"
    requested: str
    policy: str
    reason: str

    @property
    def fell_back(self) -> bool:
        return self.requested == "cuda" and self.device == "cpu"

    def as_dict(self) -> dict:
        return {"device": self.device, "requested": self.requested, "policy": self.policy, "reason": self.reason}


def cpu_threads(environ=os.environ) -> int:
    """CPU threads one training may use: ``AIRLOOP_TRAIN_THREADS``, else half this process's cores.

    XGBoost's OpenMP threads spin while they wait for each other. When a training takes every
    core while the scheduler and other tasks also run, the spinning threads take the CPU from
    the working ones: measured on a 2-core machine under load, a 65k-row, 300-round training
    took 25-31 s wall and 16-17 s CPU with 2 threads, 3-7 s wall and 3-5 s CPU with 1. Half
    the cores leaves room for the rest of the loop; on a machine of its own, set it to all.

    :raises ValueError: the setting is not a whole number of at least 1.
    """
    value = environ.get("AIRLOOP_TRAIN_THREADS", "").strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError(f"AIRLOOP_TRAIN_THREADS must be a whole number of at least 1, got {value!r}")
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // 2)


def detect_gpu() -> GpuProbe:
    """Probe for a usable NVIDIA GPU: visible devices, driver, and a CUDA build of XGBoost."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return GpuProbe(False, 0, f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU")
    count = 0
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
            count = sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.SubprocessError):
            count = 0
    if count == 0:
        gpus_dir = Path("/proc/driver/nvidia/gpus")
        count = len(list(gpus_dir.iterdir())) if gpus_dir.is_dir() else 0
    if count == 0:
        where = "nvidia-smi lists no GPU" if smi else "no nvidia-smi and no /proc/driver/nvidia/gpus"
        return GpuProbe(False, 0, f"no GPU visible on this worker ({where})")
    try:
        import xgboost

        if not xgboost.build_info().get("USE_CUDA"):
            return GpuProbe(False, count, f"{count} GPU(s) visible but this XGBoost build has no CUDA")
    except ImportError:
        return GpuProbe(False, count, "xgboost is not installed")
    return GpuProbe(True, count, f"{count} GPU(s) visible, XGBoost built with CUDA")


def choose_device(requested: str = "cuda", *, policy: str | None = None, probe: GpuProbe | None = None) -> DeviceChoice:
    """Decide the training device.

    :param requested: ``cuda`` (use a GPU when there is one) or ``cpu``.
    :param policy: ``fallback``, ``fail`` or ``cpu`` (default ``AIRLOOP_GPU_POLICY``, else fallback).
    :param probe: the GPU probe (default: :func:`detect_gpu` on this worker).
    :raises GpuUnavailable: a GPU was requested, none is usable, and the policy is ``fail``.
    """
    policy = policy or os.environ.get("AIRLOOP_GPU_POLICY", "fallback")
    if policy not in GPU_POLICIES:
        raise ValueError(f"AIRLOOP_GPU_POLICY must be one of {GPU_POLICIES}, got {policy!r}")
    if requested not in ("cuda", "cpu"):
        raise ValueError(f"device must be 'cuda' or 'cpu', got {requested!r}")
    if requested == "cpu" or policy == "cpu":
        why = "CPU requested" if requested == "cpu" else "AIRLOOP_GPU_POLICY=cpu"
        return DeviceChoice("cpu", requested, policy, why)
    probe = probe or detect_gpu()
    if probe.available:
        return DeviceChoice("cuda", requested, policy, probe.reason)
    if policy == "fail":
        raise GpuUnavailable(f"training asked for a GPU but {probe.reason}; AIRLOOP_GPU_POLICY=fail")
    return DeviceChoice("cpu", requested, policy, f"fell back to CPU: {probe.reason}")
