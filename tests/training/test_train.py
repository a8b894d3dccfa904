"""Training, the gate and device routing, on synthetic training sets of the builder's shape."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from airloop.registry import ArtifactIntegrityError, ModelRegistry, artifact_key
from airloop.core.devices import DeviceChoice, GpuProbe, GpuUnavailable, choose_device, detect_gpu
from airloop.deploy.routing import profile, profiles
from airloop.core.storage import LocalLake
from airloop.training import (
    SuggestedWindow,
    TrainingDataError,
    WindowError,
    apply_decision,
    check_training_frame,
    decide,
    evaluate_candidate,
    evaluate_scores,
    format_decision,
    load_candidate,
    load_training_set,
    publish_candidate,
    publish_training_set,
    read_reference,
    register_candidate,
    resolve_window,
    time_split,
    train_candidate,
)
from airloop.core.usecase import ModelSpec

from training_data import synthetic_training_set

SPEC = ModelSpec(
    name="synthetic_delay",
    label="is_delayed",
    slice_column="origin",
    params={"objective": "binary:logistic", "num_boost_round": 150, "max_depth": 4, "learning_rate": 0.08,
            "min_child_weight": 20, "seed": 3, "nthread": 2},  # fmt: skip
    threshold=0.3,
    primary_metric="roc_auc",
    promotion_margin=0.002,
    guardrails={"brier": 0.005, "worst_slice_roc_auc": 0.02},
    min_rows=500,
    min_class_rows=30,
    max_null_share=0.5,
    min_slice_rows=100,
    reference_rows=500,
)
CPU = DeviceChoice("cpu", "cuda", "fallback", "fell back to CPU: no GPU visible (test)")


@pytest.fixture(scope="module")
def training_set():
    return synthetic_training_set(days=40, rows_per_day=400)


# --- windows ---------------------------------------------------------------------------------


def test_window_from_params_wins():
    first, last, source = resolve_window(
        window_start=date(2026, 1, 1),
        window_end=date(2026, 1, 31),
        suggested=[SuggestedWindow(end=date(2026, 5, 1))],
        available_days=[date(2026, 6, 1)],
        window_days=90,
    )
    assert (first, last, source) == (date(2026, 1, 1), date(2026, 1, 31), "params")


def test_window_from_the_latest_drift_event():
    first, last, source = resolve_window(
        suggested=[
            SuggestedWindow(end=date(2026, 4, 29), start=date(2026, 2, 1), ds=date(2026, 4, 30)),
            SuggestedWindow(end=date(2026, 3, 29), start=date(2026, 1, 1), ds=date(2026, 3, 30)),
        ],
        available_days=[date(2026, 6, 1)],
        window_days=30,
    )
    assert (first, last) == (date(2026, 2, 1), date(2026, 4, 29))
    assert source == "drift event window 2026-02-01 .. 2026-04-29 (event ds=2026-04-30)"
    only_end = resolve_window(suggested=[SuggestedWindow(end=date(2026, 4, 29), ds=date(2026, 4, 30))], window_days=30)
    assert only_end[:2] == (date(2026, 3, 31), date(2026, 4, 29))
    with pytest.raises(WindowError, match="before its window_start"):
        resolve_window(suggested=[SuggestedWindow(end=date(2026, 4, 29), start=date(2026, 5, 1))], window_days=30)


def test_window_from_ingested_days_is_the_last_n_days():
    days = [date(2026, 1, d) for d in range(1, 32)]
    assert resolve_window(available_days=days, window_days=7)[:2] == (date(2026, 1, 25), date(2026, 1, 31))
    assert resolve_window(available_days=days[:3], window_days=7)[:2] == (date(2026, 1, 1), date(2026, 1, 3))


@pytest.mark.parametrize(
    "bounds, message",
    [
        ({"window_start": date(2026, 1, 5)}, "give both"),
        ({"window_end": date(2026, 1, 5)}, "give both"),
        ({"window_start": date(2026, 1, 5), "window_end": date(2026, 1, 1)}, "before window_start"),
        ({}, "no training window"),
    ],
)
def test_window_errors_say_what_to_give(bounds, message):
    with pytest.raises(WindowError, match=message):
        resolve_window(**bounds, window_days=30)


# --- data checks -------------------------------------------------------------------------------


def test_too_few_rows_fails_clearly(training_set):
    small = training_set.frame.head(200)
    with pytest.raises(TrainingDataError, match="200 labelled rows; at least 500"):
        check_training_frame(small, training_set.feature_columns, "is_delayed", SPEC)


def test_single_class_fails_clearly(training_set):
    frame = training_set.frame.assign(is_delayed=0)
    with pytest.raises(TrainingDataError, match="0 positive and 16000 negative.*single-class"):
        check_training_frame(frame, training_set.feature_columns, "is_delayed", SPEC)


def test_mostly_null_features_are_refused_with_numbers(training_set):
    frame = training_set.frame.copy()
    frame.loc[frame.index[: int(len(frame) * 0.8)], "visib"] = np.nan
    with pytest.raises(TrainingDataError, match=r"1 of 6 feature columns are null in more than 50% of 16000 rows: \{'visib': 0.8"):
        check_training_frame(frame, training_set.feature_columns, "is_delayed", SPEC)


def test_label_must_be_binary_and_present(training_set):
    with pytest.raises(TrainingDataError, match="must be 0/1"):
        check_training_frame(training_set.frame.assign(is_delayed=2), training_set.feature_columns, "is_delayed", SPEC)
    with pytest.raises(TrainingDataError, match="lacks columns \\['nope'\\]"):
        check_training_frame(training_set.frame, [*training_set.feature_columns, "nope"], "is_delayed", SPEC)


def test_validation_days_are_strictly_after_training_days(training_set):
    train, valid, info = time_split(training_set.frame, SPEC)
    assert train["ds"].max() < valid["ds"].min()
    assert (info["train_end"], info["valid_start"]) == (train["ds"].max(), valid["ds"].min())
    assert len(train) + len(valid) == len(training_set.frame)
    assert info["valid_rows"] == 8 * 400  # 20% of 40 days


def test_a_window_without_positives_in_validation_fails(training_set):
    frame = training_set.frame.copy()
    frame.loc[frame["ds"] >= "2026-04-02", "is_delayed"] = 0
    with pytest.raises(TrainingDataError, match="validation part .* has 0 positive"):
        time_split(frame, SPEC)


# --- metrics and gate ----------------------------------------------------------------------------


def test_metrics_on_known_scores():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.8, 0.9, 0.7, 0.3])
    m = evaluate_scores(y, p, threshold=0.5, slices=np.array(list("aaabbb")), min_slice_rows=1)
    assert m["roc_auc"] == pytest.approx(8 / 9)  # 8 of 9 (positive, negative) pairs ordered
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert m["slices"]["a"]["roc_auc"] == 1.0 and m["slices"]["b"]["roc_auc"] == 0.5
    assert (m["worst_slice"], m["worst_slice_roc_auc"]) == ("b", 0.5)


def _metrics(auc, brier=0.15, worst=0.7):
    return {"roc_auc": auc, "brier": brier, "worst_slice_roc_auc": worst}


@pytest.mark.parametrize(
    "challenger, incumbent, promote, why",
    [
        (_metrics(0.75), _metrics(0.74), True, "promoted over champion v1: roc_auc 0.7500 vs 0.7400"),
        (_metrics(0.741), _metrics(0.74), False, "needs \\+0.0020"),
        (_metrics(0.80, brier=0.16), _metrics(0.74), False, "guardrail failed: brier"),
        (_metrics(0.80, worst=0.6), _metrics(0.74), False, "guardrail failed: worst_slice_roc_auc"),
        (_metrics(0.80, brier=0.154), _metrics(0.74), True, "guardrails passed"),
        (_metrics(None), _metrics(0.74), False, "challenger has no roc_auc"),
    ],
)
def test_gate_needs_margin_and_guardrails(challenger, incumbent, promote, why):
    decision = decide(challenger, incumbent, spec=SPEC, incumbent="champion v1", incumbent_version=1)
    assert decision.promote is promote
    assert pytest.approx(decision.margin) == 0.002
    import re

    assert re.search(why, decision.reason), decision.reason
    assert ("PROMOTE" if promote else "KEEP") in format_decision(decision.as_dict())


def test_gate_on_a_lower_is_better_primary_metric():
    spec = replace(SPEC, primary_metric="log_loss", promotion_margin=0.01, guardrails={})
    assert decide({"log_loss": 0.40}, {"log_loss": 0.42}, spec=spec).promote is True
    assert decide({"log_loss": 0.415}, {"log_loss": 0.42}, spec=spec).promote is False


# --- training, registration, promotion ---------------------------------------------------------------


@pytest.fixture
def stack(tmp_path):
    return LocalLake(tmp_path / "lake"), ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}")


def _train_and_register(training_set, lake, registry, *, run_id, overrides=None):
    stored = load_training_set(lake, publish_training_set(training_set, lake)["prefix"])
    candidate = train_candidate(stored, SPEC, device=CPU, overrides=overrides)
    summary = publish_candidate(candidate, stored, lake, SPEC)
    loaded = load_candidate(lake, summary["candidate_prefix"])
    decision = evaluate_candidate(loaded, stored, SPEC, registry=registry, lake=lake)
    mv = register_candidate(loaded, SPEC, registry=registry, lake=lake, run_id=run_id, code_version="test")
    entry = apply_decision(decision, mv, registry=registry, actor=run_id, run_id=run_id)
    return summary, decision, mv, entry


def test_first_model_beats_the_baseline_then_a_crippled_one_is_refused(training_set, stack):
    lake, registry = stack
    summary, decision, mv, entry = _train_and_register(training_set, lake, registry, run_id="run-1")
    assert decision["incumbent"] == "baseline" and decision["promote"] is True, decision["reason"]
    assert decision["challenger_value"] > decision["incumbent_value"] + SPEC.promotion_margin
    champion = registry.champion(SPEC.name)
    assert champion.version == mv.version == 1 and entry.action == "promote"
    assert champion.device == "cpu" and "no GPU" in champion.device_reason
    assert champion.fingerprint == training_set.fingerprint and champion.feature_service == "synthetic_v1"
    assert champion.window_start == date(2026, 3, 1) and champion.code_version == "test"
    assert champion.metrics["baseline"]["roc_auc"] == pytest.approx(decision["incumbent_value"])
    assert artifact_key(champion.artifact_uri, lake).startswith(f"models/{SPEC.name}/v1/model-")
    reference = read_reference(lake, champion)
    assert len(reference) == SPEC.reference_rows
    assert {"score", "is_delayed", *training_set.feature_columns} <= set(reference.columns)
    assert reference["ds"].max() <= summary["split"]["train_end"]  # sampled from training days only

    _, refused, mv2, entry2 = _train_and_register(training_set, lake, registry, run_id="run-2", overrides={"num_boost_round": 1})
    assert refused["incumbent"] == "champion v1" and refused["incumbent_version"] == 1
    assert refused["promote"] is False and "kept champion v1" in refused["reason"]
    assert refused["challenger_value"] < refused["incumbent_value"]
    assert registry.champion(SPEC.name).version == 1
    assert registry.get(SPEC.name, mv2.version).status == "rejected" and entry2.action == "refuse"


def test_a_retried_promotion_or_refusal_does_not_act_twice(training_set, stack):
    lake, registry = stack
    _, decision, mv, entry = _train_and_register(training_set, lake, registry, run_id="run-1", overrides={"num_boost_round": 40})
    assert decision["promote"], decision["reason"]
    again = apply_decision(decision, registry.get(SPEC.name, mv.version), registry=registry, actor="run-1", run_id="run-1")
    assert again.id == entry.id and len(registry.history(SPEC.name)) == 1
    _, refused, mv2, entry2 = _train_and_register(training_set, lake, registry, run_id="run-2", overrides={"num_boost_round": 1})
    again = apply_decision(refused, registry.get(SPEC.name, mv2.version), registry=registry, actor="run-2", run_id="run-2")
    assert again.id == entry2.id and [h.action for h in registry.history(SPEC.name)] == ["promote", "refuse"]


def test_registration_is_idempotent_per_run(training_set, stack):
    lake, registry = stack
    stored = load_training_set(lake, publish_training_set(training_set, lake)["prefix"])
    candidate = train_candidate(stored, SPEC, device=CPU, overrides={"num_boost_round": 20})
    loaded = load_candidate(lake, publish_candidate(candidate, stored, lake, SPEC)["candidate_prefix"])
    first = register_candidate(loaded, SPEC, registry=registry, lake=lake, run_id="run-x")
    again = register_candidate(loaded, SPEC, registry=registry, lake=lake, run_id="run-x")
    assert first.version == again.version == 1 and len(registry.versions(SPEC.name)) == 1


def test_bad_training_window_leaves_the_champion_untouched(training_set, stack):
    lake, registry = stack
    _train_and_register(training_set, lake, registry, run_id="run-1")
    single_class = training_set.with_frame(training_set.frame.assign(is_delayed=0), "single")
    with pytest.raises(TrainingDataError, match="single-class"):
        _train_and_register(single_class, lake, registry, run_id="run-2")
    tiny = training_set.with_frame(training_set.frame.head(100), "tiny")
    with pytest.raises(TrainingDataError, match="100 labelled rows"):
        _train_and_register(tiny, lake, registry, run_id="run-3")
    assert registry.champion(SPEC.name).version == 1 and len(registry.versions(SPEC.name)) == 1


def test_tampered_champion_artifact_blocks_evaluation(training_set, stack):
    lake, registry = stack
    _, _, mv, _ = _train_and_register(training_set, lake, registry, run_id="run-1")
    key = artifact_key(mv.artifact_uri, lake)
    lake.write_bytes(key, lake.read_bytes(key)[:-10] + b"0123456789")
    with pytest.raises(ArtifactIntegrityError, match=f"refusing to load {SPEC.name} v1"):
        _train_and_register(training_set, lake, registry, run_id="run-2", overrides={"num_boost_round": 5})
    assert registry.champion(SPEC.name).version == 1


def test_categorical_features_round_trip_through_the_artifact(training_set, stack):
    lake, registry = stack
    _, _, mv, _ = _train_and_register(training_set, lake, registry, run_id="run-1")
    from airloop.training import predict_version

    assert mv.categories == {"carrier": ["AA", "B6", "DL", "EV", "UA"]}
    rows = training_set.frame.tail(50).copy()
    base = predict_version(registry, mv, lake, rows)
    unseen = predict_version(registry, mv, lake, rows.assign(carrier="ZZ"))
    assert base.shape == (50,) and np.all((base > 0) & (base < 1))
    assert np.all(np.isfinite(unseen))  # an unseen carrier is scored as missing, not an error


# --- devices and routing ----------------------------------------------------------------------------


def test_no_gpu_here_falls_back_to_cpu_and_says_why(monkeypatch):
    probe = detect_gpu()
    if probe.available:
        pytest.skip(f"this machine has a GPU: {probe.reason}")
    monkeypatch.delenv("AIRLOOP_GPU_POLICY", raising=False)
    choice = choose_device("cuda")
    assert (choice.device, choice.policy, choice.fell_back) == ("cpu", "fallback", True)
    assert choice.reason.startswith("fell back to CPU: ") and probe.reason in choice.reason


def test_fail_policy_fails_clearly_without_a_gpu():
    probe = GpuProbe(False, 0, "no GPU visible on this worker (nvidia-smi lists no GPU)")
    with pytest.raises(GpuUnavailable, match="asked for a GPU but no GPU visible.*AIRLOOP_GPU_POLICY=fail"):
        choose_device("cuda", policy="fail", probe=probe)


def test_training_threads_default_to_half_the_cores_and_can_be_set(monkeypatch):
    """A training leaves cores for the scheduler and the other tasks (see ``cpu_threads``); the
    booster really runs with the number chosen, and a run's override wins."""
    import json
    import os

    from airloop.core.devices import cpu_threads
    from airloop.training.fit import fit_xgboost

    cores = len(os.sched_getaffinity(0))
    assert cpu_threads({}) == max(1, cores // 2)
    assert cpu_threads({"AIRLOOP_TRAIN_THREADS": "3"}) == 3
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match=f"AIRLOOP_TRAIN_THREADS must be a whole number of at least 1, got '{bad}'"):
            cpu_threads({"AIRLOOP_TRAIN_THREADS": bad})

    frame = synthetic_training_set(days=4, rows_per_day=50).frame
    features = ["distance", "sched_hour"]
    monkeypatch.setenv("AIRLOOP_TRAIN_THREADS", "3")
    params = {"objective": "binary:logistic", "num_boost_round": 2}
    booster = fit_xgboost(frame, features, {}, "is_delayed", params, "cpu")
    assert json.loads(booster.save_config())["learner"]["generic_param"]["nthread"] == "3"
    booster = fit_xgboost(frame, features, {}, "is_delayed", {**params, "nthread": 1}, "cpu")
    assert json.loads(booster.save_config())["learner"]["generic_param"]["nthread"] == "1"


def test_device_choice_with_a_gpu_and_explicit_cpu():
    probe = GpuProbe(True, 1, "1 GPU(s) visible, XGBoost built with CUDA")
    assert choose_device("cuda", policy="fail", probe=probe).device == "cuda"
    assert choose_device("cuda", policy="cpu", probe=probe).device == "cpu"
    assert choose_device("cpu", probe=probe).reason == "CPU requested"
    with pytest.raises(ValueError, match="AIRLOOP_GPU_POLICY must be one of"):
        choose_device("cuda", policy="sometimes", probe=probe)


def test_hidden_gpus_are_reported(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpu() == GpuProbe(False, 0, "CUDA_VISIBLE_DEVICES='' hides every GPU")


def test_profiles_come_from_one_place_and_the_environment(monkeypatch):
    assert profile("train").pool == "gpu" and profile("train").queue == "gpu" and profile("train").gpus == 1
    assert profile("cpu").pool == "cpu"
    monkeypatch.setenv("AIRLOOP_TRAIN_QUEUE", "gpu-a100")
    monkeypatch.setenv("AIRLOOP_TRAIN_EXECUTOR", "CeleryExecutor")
    kwargs = profiles()["train"].operator_kwargs()
    assert kwargs == {"pool": "gpu", "pool_slots": 1, "queue": "gpu-a100", "executor": "CeleryExecutor"}
    monkeypatch.setenv("AIRLOOP_TRAIN_POOL_SLOTS", "two")
    with pytest.raises(ValueError, match="AIRLOOP_TRAIN_POOL_SLOTS must be an integer"):
        profile("train")
    monkeypatch.delenv("AIRLOOP_TRAIN_POOL_SLOTS")
    with pytest.raises(KeyError, match="no resource profile 'gpu-ish'"):
        profile("gpu-ish")


def test_a_sparse_feature_may_have_its_own_null_limit(training_set):
    frame = training_set.frame.copy()
    frame.loc[frame.index[: int(len(frame) * 0.85)], "visib"] = np.nan
    sparse = replace(SPEC, null_share_limits={"visib": 0.9})
    assert check_training_frame(frame, training_set.feature_columns, "is_delayed", sparse)["null_share_max"] == pytest.approx(0.85, abs=0.01)
    frame.loc[:, "visib"] = np.nan
    with pytest.raises(TrainingDataError, match=r"\{'visib': 1.0\} \(their own limits: \{'visib': 0.9\}\)"):
        check_training_frame(frame, training_set.feature_columns, "is_delayed", sparse)


def test_artifacts_round_trip_through_s3_and_tampering_is_refused(training_set, s3_env, tmp_path):
    """Against moto's real S3 server: register into s3://, load back verified, refuse changed bytes."""
    import uuid

    from airloop.core.storage import S3Lake

    lake = S3Lake(f"s3://airloop-train-{uuid.uuid4().hex[:8]}/lake", endpoint_url=s3_env)
    lake.ensure_bucket()
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}")
    _, decision, mv, _ = _train_and_register(training_set, lake, registry, run_id="s3-run", overrides={"num_boost_round": 30})
    assert mv.artifact_uri.startswith(f"{lake.url}/models/{SPEC.name}/v1/model-")
    booster = registry.load_booster(mv, lake)
    assert booster.num_boosted_rounds() == 30
    assert len(read_reference(lake, mv)) == SPEC.reference_rows
    key = artifact_key(mv.artifact_uri, lake)
    lake.write_bytes(key, b"not the registered model")
    with pytest.raises(ArtifactIntegrityError, match=f"refusing to load {SPEC.name} v1: s3://"):
        registry.load_booster(registry.get(SPEC.name, 1), lake)


def test_champion_is_never_judged_on_days_it_trained_on(training_set, stack):
    lake, registry = stack
    later = synthetic_training_set(days=40, rows_per_day=400, start=date(2026, 3, 21), seed=1)
    _train_and_register(later, lake, registry, run_id="run-late", overrides={"num_boost_round": 30})
    champion = registry.champion(SPEC.name)
    assert champion.metrics["split"]["train_end"] == "2026-04-21"
    # A challenger on the earlier window: its whole holdout (04-02 .. 04-09) lies inside the
    # champion's training days, so there is nothing fair to compare on.
    _, decision, mv, entry = _train_and_register(training_set, lake, registry, run_id="run-early", overrides={"num_boost_round": 30})
    assert decision["promote"] is False and entry.action == "refuse"
    assert "trained on days up to 2026-04-21" in decision["reason"] and "has 0 rows after that" in decision["reason"]
    assert registry.champion(SPEC.name).version == champion.version
    # Overlapping windows: only the holdout days after the champion's training days count.
    overlapping = synthetic_training_set(days=40, rows_per_day=400, start=date(2026, 3, 15), seed=2)
    _, decision, _, _ = _train_and_register(overlapping, lake, registry, run_id="run-overlap", overrides={"num_boost_round": 30})
    assert decision["holdout"] == {"start": "2026-04-22", "end": "2026-04-23", "rows": 2 * 400}, decision["reason"]
    assert decision["incumbent"] == f"champion v{champion.version}" and decision["incumbent_value"] is not None


def test_cpu_work_follows_the_default_queue(monkeypatch):
    monkeypatch.delenv("AIRLOOP_DEFAULT_QUEUE", raising=False)
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "cpu")
    assert profile("cpu").queue == profile("default").queue == "cpu"
    monkeypatch.setenv("AIRLOOP_DEFAULT_QUEUE", "batch")
    assert profile("cpu").queue == "batch" and profile("train").queue == "gpu"


def test_monotone_directions_are_enforced_on_present_numeric_features(training_set):
    spec = replace(SPEC, monotone={"origin_dep_delay_mean_1d": 1, "carrier": 1, "not_a_feature": -1})
    candidate = train_candidate(training_set, spec, device=CPU, overrides={"num_boost_round": 40})
    assert candidate.params["monotone_constraints"] == {"origin_dep_delay_mean_1d": 1}
    import xgboost as xgb

    from airloop.training import predict

    booster = xgb.Booster()
    booster.load_model(bytearray(candidate.model_bytes))
    rows = training_set.frame.head(300)
    history = rows["origin_dep_delay_mean_1d"]
    low = predict(booster, rows.assign(origin_dep_delay_mean_1d=history), candidate.feature_columns, candidate.categories)
    high = predict(booster, rows.assign(origin_dep_delay_mean_1d=history + 25), candidate.feature_columns, candidate.categories)
    assert np.all(high >= low - 1e-7) and high.mean() > low.mean()
