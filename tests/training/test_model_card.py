"""Model cards: built at registration beside the model, one source rendered as HTML and Markdown,
"how it fared since" from monitoring rows."""

from __future__ import annotations

import json
import re
from datetime import date

import numpy as np
import pytest

from airloop.core.storage import LocalLake, read_manifest
from airloop.registry import ModelRegistry, artifact_key
from airloop.training import (
    apply_decision,
    evaluate_candidate,
    load_candidate,
    load_training_set,
    publish_candidate,
    publish_training_set,
    register_candidate,
    train_candidate,
)
from airloop.training.card_render import NOT_VIEWED, render_html, render_markdown, sections
from airloop.training.model_card import (
    CARD_FILES,
    ModelCard,
    ModelCardError,
    build_card,
    calibration_table,
    card_from_version,
    load_card,
    read_card_file,
    weekly_auc,
)

from test_train import CPU, SPEC
from training_data import synthetic_training_set


@pytest.fixture(scope="module")
def training_set():
    return synthetic_training_set(days=40, rows_per_day=300)


@pytest.fixture
def stack(tmp_path):
    return LocalLake(tmp_path / "lake"), ModelRegistry(f"sqlite:///{tmp_path / 'registry.db'}")


def _register(training_set, lake, registry, *, run_id, with_card=True, overrides=None):
    stored = load_training_set(lake, publish_training_set(training_set, lake)["prefix"])
    candidate = train_candidate(stored, SPEC, device=CPU, overrides=overrides or {"num_boost_round": 60})
    loaded = load_candidate(lake, publish_candidate(candidate, stored, lake, SPEC)["candidate_prefix"])
    decision = evaluate_candidate(loaded, stored, SPEC, registry=registry, lake=lake)
    mv = register_candidate(loaded, SPEC, registry=registry, lake=lake, run_id=run_id, code_version="test",
                            training_set=stored if with_card else None, decision=decision if with_card else None)  # fmt: skip
    apply_decision(decision, mv, registry=registry, actor=run_id, run_id=run_id)
    return stored, loaded, decision, registry.get(SPEC.name, mv.version)


# --- pure parts ----------------------------------------------------------------------------------


def test_calibration_table_on_known_scores():
    labels = [0, 0, 1, 1, 1, 0]
    scores = [0.05, 0.08, 0.55, 0.95, 1.0, 0.52]
    table = calibration_table(labels, scores, bins=10)
    assert [(b["low"], b["rows"]) for b in table] == [(0.0, 2), (0.5, 2), (0.9, 2)]  # empty bins left out, 1.0 in the last
    assert table[1]["mean_score"] == pytest.approx(0.535) and table[1]["observed_rate"] == 0.5
    assert table[2]["observed_rate"] == 1.0 and table[0]["observed_rate"] == 0.0
    with pytest.raises(ModelCardError, match="one score per label, got 2 scores for 3 labels"):
        calibration_table([0, 1, 1], [0.2, 0.3])


def test_weekly_auc_groups_monday_weeks_of_this_version_only():
    rows = [
        # The year edge: Mon 2025-12-29 .. Sun 2026-01-04 is one week.
        {"ds": "2025-12-29", "model_version": 2, "auc": 0.70, "rows_current": 100, "status": "ok"},
        {"ds": "2026-01-04", "model_version": 2, "auc": 0.80, "rows_current": 300, "status": "ok"},
        {"ds": "2026-01-05", "model_version": 2, "auc": 0.60, "rows_current": 50, "status": "ok"},
        # DST day (Sun 2026-03-08) belongs to the week starting Mon 2026-03-02.
        {"ds": "2026-03-08", "model_version": 2, "auc": 0.75, "rows_current": 10, "status": "ok"},
        {"ds": "2026-03-09", "model_version": 3, "auc": 0.99, "rows_current": 500, "status": "ok"},  # another version
        {"ds": "2026-03-07", "model_version": 2, "auc": None, "rows_current": 0, "status": "awaiting_outcomes"},
        {"ds": "2026-03-06", "model_version": 2, "auc": 0.10, "rows_current": 10, "status": "skipped"},
    ]
    weeks = weekly_auc(rows, 2)
    assert [(w["week_start"], w["week_end"], w["days"], w["rows"]) for w in weeks] == [
        ("2025-12-29", "2026-01-04", 2, 400), ("2026-01-05", "2026-01-11", 1, 50), ("2026-03-02", "2026-03-08", 1, 10)]
    assert weeks[0]["auc"] == pytest.approx((0.7 * 100 + 0.8 * 300) / 400)
    assert (weeks[0]["auc_min"], weeks[0]["auc_max"]) == (0.7, 0.8)
    assert weekly_auc(rows, 7) == []


def test_card_source_must_be_complete():
    with pytest.raises(ModelCardError, match="lacks \\['window_start', 'window_end'"):
        ModelCard.from_dict({"model_name": "m", "version": 1})


# --- built at registration -------------------------------------------------------------------------


def test_card_is_stored_beside_the_model_and_named_in_the_version(training_set, stack):
    lake, registry = stack
    stored, loaded, decision, mv = _register(training_set, lake, registry, run_id="run-1")
    assert mv.metrics["model_card"] == CARD_FILES
    prefix = artifact_key(mv.artifact_uri, lake).rsplit("/", 1)[0]
    assert prefix == f"models/{SPEC.name}/v1"
    listed = {f["logical_name"] for f in read_manifest(lake, prefix)["files"]}
    assert listed == {"model.ubj", "reference.parquet", "metadata.json", *CARD_FILES.values()}

    card = load_card(lake, mv)
    assert card.version == 1 and card.code_version == "test" and card.sha256 == mv.sha256 == loaded.sha256
    assert (card.window_start, card.window_end) == (str(mv.window_start), str(mv.window_end)) == ("2026-03-01", "2026-04-09")
    assert card.fingerprint == training_set.fingerprint and card.training_set == stored.prefix
    assert card.feature_service == "synthetic_v1"
    assert [f["name"] for f in card.features] == list(training_set.feature_columns)
    assert {f["name"]: f["kind"] for f in card.features}["carrier"] == "categorical"
    # Calibration covers the whole holdout; its bins reproduce the holdout's positive rate.
    assert sum(b["rows"] for b in card.calibration) == card.holdout["rows"] == mv.metrics["split"]["valid_rows"]
    observed = sum(b["observed_rate"] * b["rows"] for b in card.calibration) / card.holdout["rows"]
    assert observed == pytest.approx(card.metrics["positive_rate"])
    assert card.importance[0]["gain"] > 0 and sum(i["share"] for i in card.importance) == pytest.approx(1.0)
    assert card.metrics["roc_auc"] == pytest.approx(mv.metrics["roc_auc"])
    assert set(card.metrics["slices"]) == {"EWR", "JFK", "LGA"}
    assert card.gate["promote"] is True and card.gate["reason"] == decision["reason"]
    assert set(card.gate["challenger_metrics"]["slices"]) == {"EWR", "JFK", "LGA"}


def test_html_and_markdown_say_the_same_things_and_load_nothing(training_set, stack):
    lake, registry = stack
    _, _, decision, mv = _register(training_set, lake, registry, run_id="run-1")
    html = read_card_file(lake, mv, "html").decode()
    markdown = read_card_file(lake, mv, "markdown").decode()
    card = load_card(lake, mv)
    auc = f"{card.metrics['roc_auc']:.4f}"
    for text in (html, markdown):
        assert "Model card: " + SPEC.name + " v1" in text
        assert auc in text and card.fingerprint in text and "synthetic_v1" in text and "2026-03-01 .. 2026-04-09" in text
        assert decision["reason"] in text.replace("&gt;", ">").replace("&#x27;", "'")
        assert NOT_VIEWED in text
    for section in sections(card):
        assert f"<h2>{section.title}" in html.replace("&#x27;", "'") and f"## {section.title}" in markdown
    # Self-contained: inline SVG plots, no script, no external reference (the SVG namespace is a name, not a load).
    assert html.count("<svg") == 2 and "class='calibration'" in html and "class='importance'" in html
    assert len(re.findall(r"<circle class='bin'", html)) == len(card.calibration)
    assert not re.search(r"<script|<link|src=|url\(|@import", html)
    assert set(re.findall(r"https?://[^'\" )]+", html)) == {"http://www.w3.org/2000/svg"}
    assert markdown.count("](data:image/svg+xml;base64,") == 2 and "http://" not in markdown.split("data:")[0]


def test_card_shows_the_refused_challenger_against_the_champion_per_slice(training_set, stack):
    lake, registry = stack
    _register(training_set, lake, registry, run_id="run-1")
    _, _, refused, mv2 = _register(training_set, lake, registry, run_id="run-2", overrides={"num_boost_round": 1})
    assert refused["promote"] is False and mv2.status == "rejected"
    card = load_card(lake, mv2)
    assert card.gate["incumbent"] == "champion v1" and card.gate["promote"] is False
    gate = next(s for s in sections(card) if s.anchor == "gate")
    kv = dict(gate.blocks[0].rows)
    assert kv["decision"] == "keep the incumbent" and kv["compared with"] == "champion v1"
    per_slice = gate.blocks[2]
    assert per_slice.headers[:4] == ("slice", "rows", "AUC challenger", "AUC incumbent")
    ewr = next(r for r in per_slice.rows if r[0] == "EWR")
    assert ewr[2] == f"{refused['challenger_metrics']['slices']['EWR']['roc_auc']:.4f}"
    assert ewr[3] == f"{refused['incumbent_metrics']['slices']['EWR']['roc_auc']:.4f}"


def test_fared_since_is_computed_when_viewed(training_set, stack):
    lake, registry = stack
    _, _, _, mv = _register(training_set, lake, registry, run_id="run-1")
    card = load_card(lake, mv)
    assert "Not yet served" in render_html(card, {"weeks": []})
    weeks = weekly_auc([{"ds": "2026-04-14", "model_version": 1, "auc": 0.712, "rows_current": 800, "status": "ok"}], 1)
    live = {"weeks": weeks, "status": "champion", "history": [
        {"at": "2026-04-13 03:10:00", "action": "promote", "actor": "alice", "reason": "approved by alice"}]}
    html, markdown = render_html(card, live), render_markdown(card, live)
    for text in (html, markdown):
        assert "2026-04-13 .. 2026-04-19" in text and "0.7120" in text and "approved by alice" in text
        assert NOT_VIEWED not in text and "status now" in text
    assert "class='weekly-auc'" in html


def test_versions_without_a_stored_card_get_one_from_the_registry(training_set, stack):
    lake, registry = stack
    _, _, _, mv = _register(training_set, lake, registry, run_id="run-1", with_card=False)
    assert "model_card" not in mv.metrics
    with pytest.raises(ModelCardError, match="has no stored model card"):
        read_card_file(lake, mv)
    card = load_card(lake, mv)
    assert card == card_from_version(mv) and card.calibration == [] and card.importance == []
    assert card.gate["promote"] is True and "registered without a stored card" in card.notes[0]
    html = render_html(card)
    assert "<svg" not in html and f"{mv.metrics['roc_auc']:.4f}" in html


def test_a_changed_card_file_is_refused(training_set, stack):
    lake, registry = stack
    _, _, _, mv = _register(training_set, lake, registry, run_id="run-1")
    prefix = artifact_key(mv.artifact_uri, lake).rsplit("/", 1)[0]
    entry = next(f for f in read_manifest(lake, prefix)["files"] if f["logical_name"] == "model_card.json")
    source = json.loads(lake.read_bytes(f"{prefix}/{entry['name']}"))
    source["metrics"]["roc_auc"] = 0.99
    lake.write_bytes(f"{prefix}/{entry['name']}", json.dumps(source).encode())
    with pytest.raises(ModelCardError, match="model_card.json does not match its manifest"):
        load_card(lake, mv)


def test_a_card_is_not_built_from_another_training_set(training_set, stack):
    lake, registry = stack
    stored, loaded, _, _ = _register(training_set, lake, registry, run_id="run-1")
    other = synthetic_training_set(days=20, rows_per_day=200, seed=5)
    with pytest.raises(ModelCardError, match="is not the one candidate"):
        build_card(loaded, other, SPEC)
    assert np.isfinite(build_card(loaded, stored, SPEC).metrics["roc_auc"])
    assert date.fromisoformat(build_card(loaded, stored, SPEC).holdout["start"]) > date(2026, 3, 1)
