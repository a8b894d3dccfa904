"""The Kubernetes pod_override of Airloop's resource profiles (airloop.deploy.k8s)."""

from __future__ import annotations

import importlib.util

import pytest

from airloop.deploy.k8s import K8sConfigError, parse_node_selector, parse_tolerations, pod_manifest
from airloop.deploy.routing import profile

HAS_K8S_CLIENT = importlib.util.find_spec("kubernetes") is not None
needs_client = pytest.mark.skipif(
    not HAS_K8S_CLIENT,
    reason="the kubernetes client is not installed (it comes with apache-airflow-providers-cncf-kubernetes, "
    "which Airloop does not pin: KubernetesExecutor deployments add it)",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith(("AIRLOOP_K8S_", "AIRLOOP_TRAIN_", "AIRLOOP_CPU_")):
            monkeypatch.delenv(name)


def test_gpu_profile_asks_for_one_gpu_on_a_gpu_node():
    pod = pod_manifest(profile("train"))
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["name"] == "base"  # the container KubernetesExecutor runs the task in
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in container["resources"]["requests"]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["metadata"]["labels"]["airloop.io/resource-profile"] == "train"


def test_cpu_profile_gets_no_gpu_no_toleration():
    spec = pod_manifest(profile("cpu"))["spec"]
    limits = spec["containers"][0]["resources"]["limits"]
    assert not any("gpu" in key for key in limits)
    assert "tolerations" not in spec and "nodeSelector" not in spec


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("AIRLOOP_K8S_GPU_NODE_SELECTOR", "cloud.google.com/gke-accelerator=nvidia-l4, pool=train")
    monkeypatch.setenv("AIRLOOP_K8S_GPU_TOLERATIONS", "nvidia.com/gpu=present:NoSchedule,spot:NoExecute")
    monkeypatch.setenv("AIRLOOP_K8S_GPU_RESOURCE", "amd.com/gpu")
    monkeypatch.setenv("AIRLOOP_K8S_GPU_RUNTIME_CLASS", "nvidia")
    monkeypatch.setenv("AIRLOOP_K8S_TRAIN_MEMORY", "16Gi")
    spec = pod_manifest(profile("train"))["spec"]
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4", "pool": "train"}
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute"},
    ]
    resources = spec["containers"][0]["resources"]
    assert resources["limits"] == {"memory": "16Gi", "amd.com/gpu": "1"}
    assert spec["runtimeClassName"] == "nvidia"


def test_empty_settings_remove_selector_and_tolerations(monkeypatch):
    monkeypatch.setenv("AIRLOOP_K8S_GPU_NODE_SELECTOR", "")
    monkeypatch.setenv("AIRLOOP_K8S_GPU_TOLERATIONS", "")
    spec = pod_manifest(profile("train"))["spec"]
    assert "nodeSelector" not in spec and "tolerations" not in spec
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize(
    "parse, value, variable",
    [
        (parse_node_selector, "gpu", "AIRLOOP_K8S_GPU_NODE_SELECTOR"),
        (parse_tolerations, "nvidia.com/gpu", "AIRLOOP_K8S_GPU_TOLERATIONS"),
        (parse_tolerations, "nvidia.com/gpu:Sometimes", "AIRLOOP_K8S_GPU_TOLERATIONS"),
    ],
)
def test_bad_settings_name_the_variable(parse, value, variable):
    with pytest.raises(K8sConfigError, match=variable):
        parse(value)


def test_no_pod_override_unless_the_profile_runs_on_kubernetes(monkeypatch):
    assert "pod_override" not in profile("train").executor_config()
    monkeypatch.setenv("AIRLOOP_CPU_EXECUTOR", "KubernetesExecutor")
    assert "pod_override" not in profile("cpu").executor_config()  # no GPU: the template is enough


@needs_client
def test_pod_override_is_the_manifest_as_a_v1pod(monkeypatch):
    from kubernetes.client import ApiClient, V1Pod

    monkeypatch.setenv("AIRLOOP_TRAIN_EXECUTOR", "KubernetesExecutor")
    train = profile("train")
    override = train.executor_config()["pod_override"]
    assert isinstance(override, V1Pod)
    manifest = pod_manifest(train)
    assert ApiClient().sanitize_for_serialization(override) == {"metadata": manifest["metadata"], "spec": manifest["spec"]}
    assert train.operator_kwargs()["executor"] == "KubernetesExecutor"


def test_pod_override_without_client_says_what_to_install(monkeypatch):
    import sys

    from airloop.deploy.k8s import pod_override

    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes -> ImportError
    monkeypatch.setitem(sys.modules, "kubernetes.client", None)
    with pytest.raises(ImportError, match="apache-airflow-providers-cncf-kubernetes"):
        pod_override(profile("train"))
