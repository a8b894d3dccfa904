"""Kubernetes pods for Airloop's resource profiles (KubernetesExecutor's ``pod_override``).

On Kubernetes each task runs in its own pod, made from the executor's pod template; a task's
``executor_config={"pod_override": V1Pod(...)}`` changes that pod. For the GPU profile (training)
the override asks for ``nvidia.com/gpu`` in the limits, tolerates the taint GPU nodes usually
carry and selects GPU nodes; :meth:`airloop.deploy.routing.ResourceProfile.executor_config` adds it
when a profile with GPUs names the Kubernetes executor (``AIRLOOP_TRAIN_EXECUTOR=KubernetesExecutor``).

:func:`pod_manifest` builds the pod as the Kubernetes API's JSON (standard library only, so it
is testable anywhere); :func:`pod_override` turns it into the ``kubernetes`` client's ``V1Pod``
that Airflow expects (the client comes with ``apache-airflow-providers-cncf-kubernetes``).

Settings (environment, read on each call):

- ``AIRLOOP_K8S_GPU_RESOURCE``: extended resource name (default ``nvidia.com/gpu``).
- ``AIRLOOP_K8S_GPU_NODE_SELECTOR``: ``key=value[,key=value]`` (default
  ``nvidia.com/gpu.present=true``, the label NVIDIA's GPU operator puts on GPU nodes); empty: none.
- ``AIRLOOP_K8S_GPU_TOLERATIONS``: ``key[=value]:Effect[,...]`` (default
  ``nvidia.com/gpu:NoSchedule``, i.e. operator ``Exists``); empty: none.
- ``AIRLOOP_K8S_<CLASS>_CPU`` / ``AIRLOOP_K8S_<CLASS>_MEMORY``: requests of the class's
  container (defaults: train ``2`` and ``8Gi``; other classes ``500m`` and ``1Gi``).
- ``AIRLOOP_K8S_GPU_RUNTIME_CLASS``: ``runtimeClassName`` for GPU pods (e.g. ``nvidia``); unset: none.
"""

from __future__ import annotations

import os
from typing import Any, Protocol


class ResourceProfile(Protocol):
    """What a pod needs of a resource profile (:class:`airloop.deploy.routing.ResourceProfile`).

    A protocol, not an import: routing imports this module for its ``pod_override``.
    """

    name: str
    gpus: int

# KubernetesExecutor runs the task in the container named "base" of its pod template.
BASE_CONTAINER = "base"
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


class K8sConfigError(ValueError):
    """A Kubernetes setting cannot be parsed; the message names the variable."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None else value.strip()


def parse_node_selector(value: str, *, variable: str = "AIRLOOP_K8S_GPU_NODE_SELECTOR") -> dict[str, str]:
    """``"a=1,b=2"`` -> ``{"a": "1", "b": "2"}`` (empty string: no selector)."""
    selector = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise K8sConfigError(f"{variable}: expected key=value, got {item!r}")
        selector[key.strip()] = val.strip()
    return selector


def parse_tolerations(value: str, *, variable: str = "AIRLOOP_K8S_GPU_TOLERATIONS") -> list[dict[str, str]]:
    """``"nvidia.com/gpu:NoSchedule,team=ml:NoExecute"`` -> Kubernetes tolerations.

    ``key:Effect`` tolerates the taint whatever its value (``operator: Exists``);
    ``key=value:Effect`` only that value (``operator: Equal``).
    """
    tolerations = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        taint, sep, effect = item.rpartition(":")
        if not sep or effect not in EFFECTS or not taint:
            raise K8sConfigError(f"{variable}: expected key[=value]:{'|'.join(EFFECTS)}, got {item!r}")
        key, eq, val = taint.partition("=")
        if eq:
            tolerations.append({"key": key, "operator": "Equal", "value": val, "effect": effect})
        else:
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    return tolerations


def pod_manifest(profile: "ResourceProfile") -> dict[str, Any]:
    """The pod override of one resource profile, as Kubernetes API JSON (camelCase keys).

    Only what differs from the executor's pod template is set: the ``base`` container's
    resources, and for GPU profiles the node selector, tolerations and runtime class.
    """
    cls = profile.name.upper()
    gpu = profile.gpus > 0
    cpu = _env(f"AIRLOOP_K8S_{cls}_CPU", "2" if gpu else "500m")
    memory = _env(f"AIRLOOP_K8S_{cls}_MEMORY", "8Gi" if gpu else "1Gi")
    resources: dict[str, dict[str, str]] = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}
    spec: dict[str, Any] = {"containers": [{"name": BASE_CONTAINER, "resources": resources}]}
    if gpu:
        resource = _env("AIRLOOP_K8S_GPU_RESOURCE", "nvidia.com/gpu")
        # Extended resources are limits only (Kubernetes sets the request equal to the limit).
        resources["limits"][resource] = str(profile.gpus)
        selector = parse_node_selector(_env("AIRLOOP_K8S_GPU_NODE_SELECTOR", "nvidia.com/gpu.present=true"))
        tolerations = parse_tolerations(_env("AIRLOOP_K8S_GPU_TOLERATIONS", "nvidia.com/gpu:NoSchedule"))
        runtime_class = _env("AIRLOOP_K8S_GPU_RUNTIME_CLASS", "")
        if selector:
            spec["nodeSelector"] = selector
        if tolerations:
            spec["tolerations"] = tolerations
        if runtime_class:
            spec["runtimeClassName"] = runtime_class
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"airloop.io/resource-profile": profile.name}},
        "spec": spec,
    }


def pod_override(profile: "ResourceProfile"):
    """The ``kubernetes.client.V1Pod`` for ``executor_config={"pod_override": ...}``.

    :raises ImportError: the ``kubernetes`` client is not installed (it comes with
        ``apache-airflow-providers-cncf-kubernetes``, which KubernetesExecutor needs anyway).
    """
    try:
        from kubernetes.client import (
            V1Container,
            V1ObjectMeta,
            V1Pod,
            V1PodSpec,
            V1ResourceRequirements,
            V1Toleration,
        )
    except ImportError as exc:
        raise ImportError(
            "the Kubernetes pod_override needs the kubernetes client: install "
            "apache-airflow-providers-cncf-kubernetes (KubernetesExecutor needs it too)"
        ) from exc

    # Built from the model classes with keyword arguments: the one form every client version
    # (the classic generated models and the newer pydantic ones) accepts.
    manifest = pod_manifest(profile)
    spec = manifest["spec"]
    resources = spec["containers"][0]["resources"]
    return V1Pod(
        metadata=V1ObjectMeta(labels=manifest["metadata"]["labels"]),
        spec=V1PodSpec(
            containers=[
                V1Container(
                    name=BASE_CONTAINER,
                    resources=V1ResourceRequirements(requests=resources["requests"], limits=resources["limits"]),
                )
            ],
            node_selector=spec.get("nodeSelector"),
            tolerations=[V1Toleration(**t) for t in spec.get("tolerations", [])] or None,
            runtime_class_name=spec.get("runtimeClassName"),
        ),
    )
