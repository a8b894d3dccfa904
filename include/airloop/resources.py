"""Resource profiles: where each class of task runs (pool, queue, executor) and on what device.

One place decides routing. A DAG asks for a profile by task class (``resource_kwargs("train")``)
and passes the result to the operator, so moving training onto GPU workers is a configuration
change, not a code change. Every value can be overridden from the environment:

- ``AIRLOOP_<CLASS>_POOL``, ``AIRLOOP_<CLASS>_QUEUE``, ``AIRLOOP_<CLASS>_POOL_SLOTS``,
  ``AIRLOOP_<CLASS>_EXECUTOR`` (e.g. ``AIRLOOP_TRAIN_QUEUE=gpu-a100``).
- ``AIRLOOP_DEFAULT_QUEUE`` (else ``AIRFLOW__OPERATORS__DEFAULT_QUEUE``, else ``default``): the
  queue of every non-training task class.
- ``AIRLOOP_GPU_POLICY``: what training does on a worker without a usable GPU:
  ``fallback`` (default: train on the CPU and record ``device="cpu"`` with the reason),
  ``fail`` (raise :class:`GpuUnavailable`) or ``cpu`` (never use a GPU).

A profile's ``gpus`` is the number of GPUs a task of that class asks for; an executor that
schedules pods (Kubernetes) turns it into a ``nvidia.com/gpu`` limit in its ``executor_config``
(:meth:`ResourceProfile.executor_config`). Imported at DAG parse time: standard library only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

GPU_POLICIES = ("fallback", "fail", "cpu")


class GpuUnavailable(RuntimeError):
    """Training was asked to use a GPU, none is usable, and the policy says fail."""


@dataclass(frozen=True)
class ResourceProfile:
    """Where one class of task runs.

    :param name: the task class (``default``, ``train``, ...).
    :param pool: Airflow pool (created by ``airloop setup`` from ``dagconfig.POOLS``).
    :param queue: executor queue (Celery workers listen on queues; a GPU worker on ``gpu``).
    :param pool_slots: pool slots one task takes.
    :param executor: executor name when several are configured (``None``: the default one).
    :param gpus: GPUs one task wants (0: CPU work).
    :param extra_config: ``executor_config`` entries passed through as they are.
    """

    name: str
    pool: str
    queue: str
    pool_slots: int = 1
    executor: str | None = None
    gpus: int = 0
    extra_config: dict = field(default_factory=dict)

    def executor_config(self) -> dict:
        """The ``executor_config`` of a task of this class (empty unless configured).

        On the Kubernetes executor a profile with GPUs gets its ``pod_override``
        (``nvidia.com/gpu`` limit, tolerations, node selector: :mod:`airloop.k8s`).
        """
        config = dict(self.extra_config)
        if self.gpus and self.executor and "Kubernetes" in self.executor and "pod_override" not in config:
            from airloop.k8s import pod_override

            config["pod_override"] = pod_override(self)
        return config

    def operator_kwargs(self) -> dict:
        """Keyword arguments for any ``BaseOperator``: pool, pool_slots, queue, executor(_config)."""
        kwargs = {"pool": self.pool, "pool_slots": self.pool_slots, "queue": self.queue}
        config = self.executor_config()
        if config:
            kwargs["executor_config"] = config
        if self.executor:
            kwargs["executor"] = self.executor
        return kwargs


def _env(cls: str, key: str, default: str) -> str:
    value = os.environ.get(f"AIRLOOP_{cls.upper()}_{key}")
    return default if value in (None, "") else value


def _profile(cls: str, pool: str, queue: str, gpus: int) -> ResourceProfile:
    slots = _env(cls, "POOL_SLOTS", "1")
    try:
        pool_slots = int(slots)
    except ValueError:
        raise ValueError(f"AIRLOOP_{cls.upper()}_POOL_SLOTS must be an integer, got {slots!r}") from None
    return ResourceProfile(
        name=cls,
        pool=_env(cls, "POOL", pool),
        queue=_env(cls, "QUEUE", queue),
        pool_slots=pool_slots,
        executor=_env(cls, "EXECUTOR", "") or None,
        gpus=gpus,
    )


def profiles() -> dict[str, ResourceProfile]:
    """Every task class and its profile (environment read on each call)."""
    # Follow Airflow's own default queue unless Airloop's is set (Celery workers listen on it).
    default_queue = (
        os.environ.get("AIRLOOP_DEFAULT_QUEUE") or os.environ.get("AIRFLOW__OPERATORS__DEFAULT_QUEUE") or "default"
    )
    return {
        # light bookkeeping: registry writes, promotions, rollbacks
        "default": _profile("default", "cpu", default_queue, 0),
        # data work: ingestion, features, training-set assembly, scoring, monitoring
        "cpu": _profile("cpu", "cpu", default_queue, 0),
        # model training (and scoring of champion and challenger on the holdout)
        "train": _profile("train", "gpu", "gpu", 1),
    }


def profile(task_class: str) -> ResourceProfile:
    """The profile of ``task_class``; the error lists the known classes."""
    known = profiles()
    try:
        return known[task_class]
    except KeyError:
        raise KeyError(f"no resource profile {task_class!r}; known: {sorted(known)}") from None


def resource_kwargs(task_class: str) -> dict:
    """``profile(task_class).operator_kwargs()``: spread it into an operator's arguments."""
    return profile(task_class).operator_kwargs()


# --- devices ----------------------------------------------------------------------------------


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
