"""Champion versus challenger: evaluate the candidate against the champion on the same holdout,
register it as ``models/<name>/v<N>/``, and promote it or record the gate's refusal.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import TYPE_CHECKING

from airloop.training.artifacts import MODELS_ZONE, StoredCandidate
from airloop.training.checks import TIME_COLUMN, time_split
from airloop.training.encoding import predict, predict_version
from airloop.training.metrics import evaluate_scores

if TYPE_CHECKING:
    from airloop.core.storage import Lake
    from airloop.core.usecase import ModelSpec
    from airloop.registry import ModelRegistry, ModelVersion

log = logging.getLogger(__name__)


def evaluate_candidate(
    candidate: StoredCandidate,
    training_set,
    spec: "ModelSpec",
    *,
    registry: "ModelRegistry",
    lake: "Lake",
) -> dict:
    """Score the challenger and the current champion on the same holdout; return the gate decision.

    Without a champion the challenger is compared with the baseline trained on the same data
    (its holdout metrics were computed at training time on the same rows). With one, the holdout
    keeps only days after the champion's own training days: a model is never judged on rows it
    learned from. When too few such rows remain, the challenger is kept out (with the numbers).
    """
    from airloop.training.gate import decide

    _, valid, split = time_split(training_set.frame, spec)
    meta = candidate.metadata
    champion = registry.champion(spec.name)
    holdout = {"start": split["valid_start"], "end": split["valid_end"], "rows": split["valid_rows"]}

    def score(rows, scores):
        slices = rows[spec.slice_column] if spec.slice_column in rows.columns else None
        return evaluate_scores(rows[spec.label], scores, threshold=spec.threshold, slices=slices,
                               min_slice_rows=spec.min_slice_rows)  # fmt: skip

    def challenger_on(rows):
        return score(rows, predict(candidate.booster(), rows, meta["feature_columns"], meta["categories"]))

    challenger_metrics, incumbent_metrics = None, None
    if champion is None:
        challenger_metrics, incumbent_metrics = challenger_on(valid), meta["baseline_metrics"]
        decision = decide(challenger_metrics, incumbent_metrics, spec=spec, incumbent="baseline")
    else:
        name = f"champion v{champion.version}"
        missing = [c for c in champion.feature_columns if c not in valid.columns]
        champion_train_end = str((champion.metrics.get("split") or {}).get("train_end") or champion.window_end)
        unseen = valid[valid[TIME_COLUMN].astype(str).str[:10] > champion_train_end]
        positives = int(unseen[spec.label].sum())
        refusal = None
        if missing:
            refusal = f"{name} needs features {missing} this holdout lacks; it cannot be compared on the same rows"
        elif min(positives, len(unseen) - positives) < spec.min_class_rows:
            refusal = (
                f"{name} was trained on days up to {champion_train_end}; the holdout {holdout['start']} .. "
                f"{holdout['end']} has {len(unseen)} rows after that ({positives} positive), too few to compare "
                f"(each class needs {spec.min_class_rows}); train on a later window"
            )
        if refusal:
            challenger_metrics = challenger_on(valid)
            decision = decide(challenger_metrics, None, spec=spec, incumbent=name,
                              incumbent_version=champion.version, refusal=refusal)  # fmt: skip
        else:
            if len(unseen) < len(valid):
                log.info("Holdout restricted to %d of %d rows after %s's training days", len(unseen), len(valid), name)
                holdout = {"start": str(unseen[TIME_COLUMN].min())[:10], "end": holdout["end"], "rows": int(len(unseen))}
            incumbent_metrics = score(unseen, predict_version(registry, champion, lake, unseen))
            challenger_metrics = challenger_on(unseen)
            decision = decide(challenger_metrics, incumbent_metrics, spec=spec, incumbent=name, incumbent_version=champion.version)
    out = decision.as_dict()
    # Both models' metrics on the gate's holdout, slices included (the model card and a reviewer read them).
    out["challenger_metrics"], out["incumbent_metrics"] = challenger_metrics, incumbent_metrics
    out["holdout"] = holdout
    out["candidate_sha256"] = candidate.sha256
    return out


def register_candidate(
    candidate: StoredCandidate,
    spec: "ModelSpec",
    *,
    registry: "ModelRegistry",
    lake: "Lake",
    run_id: str = "",
    code_version: str | None = None,
    training_set=None,
    decision: dict | None = None,
) -> "ModelVersion":
    """Copy the candidate into ``models/<name>/v<N>/`` and record version N (``candidate``).

    Idempotent per run: a rerun of the same run with the same model bytes returns the version
    it registered before.

    :param training_set: the stored training set of the candidate; when given, the model card
        (:mod:`~airloop.training.model_card`) is written beside the model and named in the
        version's ``metrics["model_card"]``.
    :param decision: the automatic gate's decision, shown on the card.
    """
    from airloop.core.storage import publish_partition
    from airloop.core.version import code_version as current_code_version

    if run_id:
        existing = registry.find_version(spec.name, run_id=run_id, sha256=candidate.sha256)
        if existing is not None:
            log.info("Run %s already registered %s", run_id, existing.label)
            return existing
    meta = candidate.metadata
    metrics = dict(meta["metrics"])
    metrics["baseline"] = meta["baseline_metrics"]
    metrics["split"] = meta["split"]
    metrics["data_checks"] = meta["data_checks"]
    card = None
    if training_set is not None:
        from airloop.training.model_card import CARD_FILES, build_card

        # Built before a version number is taken: a card that cannot be built leaves no pending version.
        card = build_card(candidate, training_set, spec, decision)
        metrics["model_card"] = dict(CARD_FILES)
    # The window is stored in metadata.json as YYYY-MM-DD text: a stored value read back, not a day parsed.
    mv = registry.reserve_version(
        spec.name,
        feature_service=meta["feature_service"],
        feature_columns=meta["feature_columns"],
        categories=meta["categories"],
        window_start=date.fromisoformat(meta["window_start"]),
        window_end=date.fromisoformat(meta["window_end"]),
        fingerprint=meta["fingerprint"],
        params=meta["params"],
        metrics=metrics,
        code_version=code_version or current_code_version(),
        device=meta["device"]["device"],
        device_reason=meta["device"]["reason"],
        training_rows=int(meta["split"]["train_rows"]),
        run_id=run_id,
    )
    prefix = f"{MODELS_ZONE}/{spec.name}/v{mv.version}"
    try:
        files = {
            "model.ubj": candidate.model_bytes,
            "reference.parquet": candidate.reference_bytes,
            "metadata.json": json.dumps({**meta, "version": mv.version}, indent=2, sort_keys=True, default=str).encode(),
        }
        if card is not None:
            from airloop.training.card_render import card_files

            files.update(card_files(card.for_version(mv)))
        published = publish_partition(lake, prefix, files, {"model_name": spec.name, "version": mv.version})
    except Exception as exc:
        registry.fail_version(spec.name, mv.version, f"publishing artifacts to {lake.uri(prefix)} failed: {exc}")
        raise
    names = {f["logical_name"]: f["name"] for f in published.manifest["files"]}
    return registry.finalize_version(
        spec.name,
        mv.version,
        artifact_uri=lake.uri(f"{prefix}/{names['model.ubj']}"),
        sha256=candidate.sha256,
        reference_uri=lake.uri(f"{prefix}/{names['reference.parquet']}"),
    )


def apply_decision(
    decision: dict,
    mv: "ModelVersion",
    *,
    registry: "ModelRegistry",
    actor: str,
    run_id: str = "",
    reason: str = "",
):
    """Promote ``mv`` when the gate said so (only if the champion is still the one it was
    compared with), else record the refusal. Returns the history entry."""
    why = decision["reason"] if not reason else f"{reason}; gate: {decision['reason']}"
    # A retried task finds its own earlier outcome and returns it instead of acting twice.
    done = {"promote": "champion", "refuse": "rejected"}["promote" if decision["promote"] else "refuse"]
    if mv.status == done:
        earlier = [e for e in registry.history(mv.model_name) if e.candidate_version == mv.version and e.run_id == run_id]
        if earlier:
            return earlier[-1]
    if decision["promote"]:
        return registry.promote(
            mv.model_name, mv.version, reason=why, actor=actor, run_id=run_id,
            expected_champion=decision.get("incumbent_version"), details=decision,
        )  # fmt: skip
    return registry.refuse(mv.model_name, mv.version, reason=why, actor=actor, run_id=run_id, details=decision)
