"""Resource profiles: where each class of task runs (pool, queue, executor, GPUs asked for).

One place decides routing. A DAG asks for a profile by task class (``resource_kwargs("train")``)
and passes the result to the operator, so moving training onto GPU workers is a configuration
change, not a code change. Every value can be overridden from the environment:

- ``AIRLOOP_<CLASS>_POOL``, ``AIRLOOP_<CLASS>_QUEUE``, ``AIRLOOP_<CLASS>_POOL_SLOTS``,
  ``AIRLOOP_<CLASS>_EXECUTOR`` (e.g. ``AIRLOOP_TRAIN_QUEUE=gpu-a100``).
- ``AIRLOOP_DEFAULT_QUEUE`` (else ``AIRFLOW__OPERATORS__DEFAULT_QUEUE``, else ``default``): the
  queue of every non-training task class.

Which device training then uses on its worker (``AIRLOOP_GPU_POLICY``) is
:mod:`airloop.core.devices`.

A profile's ``gpus`` is the number of GPUs a task of that class asks for; an executor that
schedules pods (Kubernetes) turns it into a ``nvidia.com/gpu`` limit in its ``executor_config``
(:meth:`ResourceProfile.executor_config`). Imported at DAG parse time: standard library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


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
        (``nvidia.com/gpu`` limit, tolerations, node selector: :mod:`airloop.deploy.k8s`).
        """
        config = dict(self.extra_config)
        if self.gpus and self.executor and "Kubernetes" in self.executor and "pod_override" not in config:
            from airloop.deploy.k8s import pod_override

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
