"""Training-stage operators: build the training set, train, compare with the champion, register,
promote or keep, and roll back. Each is thin: it resolves its inputs, calls :mod:`airloop.training`
or :mod:`airloop.registry`, and logs what it decided. Tasks pass lake prefixes and small dicts
through XCom, never frames.
"""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseOperator

from airloop_plugins.hooks.lake import LakeHook
from airloop_plugins.hooks.registry import ModelRegistryHook
from airloop_plugins.operators.base import SkipReasonMixin
from airloop_plugins.operators.lineage import LineageMixin


class _ModelStageOperator(SkipReasonMixin, LineageMixin, BaseOperator):
    """What the training-stage operators share: settings, the use case's model, lake, registry."""

    @cached_property
    def settings(self):
        from airloop.core.config import get_settings

        return get_settings()

    @cached_property
    def use_case(self):
        from airloop.core.usecase import load_use_case

        return load_use_case(self.settings.use_case)

    @cached_property
    def spec(self):
        from airflow.sdk.exceptions import AirflowFailException

        if self.use_case.model is None:
            raise AirflowFailException(f"use case {self.use_case.name!r} defines no model (UseCase.model)")
        return self.use_case.model

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook()

    @cached_property
    def registry_hook(self) -> ModelRegistryHook:
        return ModelRegistryHook()

    @staticmethod
    def actor(context) -> str:
        """Who acts: the user who triggered the run, else the DAG run itself."""
        dag_run = context.get("dag_run")
        user = getattr(dag_run, "triggering_user_name", None)
        run = f"{getattr(dag_run, 'dag_id', '?')}/{getattr(dag_run, 'run_id', '?')}"
        return f"{user} via {run}" if user else run

    @staticmethod
    def run_id(context) -> str:
        dag_run = context.get("dag_run")
        return f"{getattr(dag_run, 'dag_id', '')}/{getattr(dag_run, 'run_id', '')}"


class TrainingSetOperator(_ModelStageOperator):
    """Build the training set of a window and store it in the lake (``training_sets/<fp>/``).

    The window comes from ``window_start``/``window_end`` (templated, e.g. from params), else from
    the triggering drift events' ``extra`` (``window_start``, ``window_end``), else the last
    ``window_days`` ingested days of the use case's event table. Never from a logical date. The
    bounds are parsed here, once, into dates; :func:`airloop.training.resolve_window` decides.

    :param window_start: first day ``YYYY-MM-DD`` (templated), or None.
    :param window_end: last day, inclusive (templated), or None.
    :param window_days: length of the default window (default: the model spec's).
    :param feature_service: FeatureService to build with (default: the use case's).
    """

    template_fields = ("window_start", "window_end", "window_days", "feature_service")
    ui_color = "#eef6ee"

    def __init__(self, *, window_start=None, window_end=None, window_days=None, feature_service=None, **kwargs):
        super().__init__(**kwargs)
        self.window_start = window_start
        self.window_end = window_end
        self.window_days = window_days
        self.feature_service = feature_service

    def window_day(self, value, name: str):
        """A window bound (a param or a drift event's ``extra``) as a date; None when not given.

        :raises WindowError: ``value`` is not a ``YYYY-MM-DD`` date.
        """
        from airloop.core.dates import PartitionDateError
        from airloop.training import WindowError

        if _blank(value) is None:
            return None
        try:
            return self.use_case.day(value).date
        except PartitionDateError:
            raise WindowError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from None

    def available_days(self) -> list:
        """Ingested days whose rows can be trained on: their raw partition and the feature
        partitions their lookups read (the day before's) are published. A raw day whose features
        are not computed yet (the newest, or the raw lookback of a warm-up) is not one."""
        from airloop.core.storage import list_partitions
        from airloop.scoring import days_with_inputs, view_prefixes

        lake = self.lake_hook.lake
        table = self.use_case.features.event_table if self.use_case.features else next(iter(self.use_case.tables))
        raw = [self.use_case.day(p.rsplit("ds=", 1)[-1]) for p in list_partitions(lake, f"raw/{table}")]
        ready = days_with_inputs(lake, self.use_case, raw, view_prefixes(self.settings, self.use_case, lake=lake))
        if len(ready) < len(raw):
            self.log.info("%d of %d ingested days have their features published; the window is chosen among those",
                          len(ready), len(raw))  # fmt: skip
        return [d.date for d in ready]

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowFailException

        from airloop.features import build_training_set, MissingFeaturePartition, MissingRawPartition
        from airloop.training import SuggestedWindow, WindowError, publish_training_set, resolve_window

        events = context.get("triggering_asset_events") or {}
        extras = [dict(e.extra or {}) for evs in events.values() for e in evs]
        days = int(self.window_days) if self.window_days not in (None, "", "None") else self.spec.window_days
        available = None
        try:
            suggested = [
                SuggestedWindow(
                    end=self.window_day(extra["window_end"], "event window_end"),
                    start=self.window_day(extra.get("window_start"), "event window_start"),
                    ds=self.window_day(extra.get("ds"), "event ds"),
                )
                for extra in extras
                if extra.get("window_end")
            ]
            available = None if (_blank(self.window_start) or extras) else self.available_days()
            start, end, source = resolve_window(
                window_start=self.window_day(self.window_start, "window_start"),
                window_end=self.window_day(self.window_end, "window_end"),
                suggested=suggested,
                available_days=available,
                window_days=days,
            )
        except WindowError as exc:
            if available == []:  # nothing ingested yet: not a fault, and a retry cannot help
                self.skip(context, f"inputs not there yet: {exc}")
            raise AirflowFailException(str(exc)) from None
        self.log.info("Training window %s .. %s (%s)", start, end, source)
        try:
            training_set = build_training_set(
                start, end, settings=self.settings, feature_service=_blank(self.feature_service), lake=self.lake_hook.lake
            )
        except (MissingFeaturePartition, MissingRawPartition) as exc:  # upstream days not computed yet
            self.skip(context, f"inputs not there yet for the window {start} .. {end}: {exc}")
        summary = publish_training_set(training_set, self.lake_hook.lake)
        self.log.info(
            "Training set %s: %d rows, %d features, feature service %s, stored at %s",
            summary["fingerprint"][:12], summary["rows"], len(summary["feature_columns"]),
            summary["feature_service"], summary["prefix"],
        )  # fmt: skip
        summary["window_source"] = source
        self.record_lineage([summary["prefix"]])
        return summary


class ModelTrainOperator(_ModelStageOperator):
    """Train the XGBoost challenger and the baseline on a stored training set.

    Runs on the ``train`` resource profile (``gpu`` pool and queue). The device follows
    ``AIRLOOP_GPU_POLICY`` (:func:`airloop.core.devices.choose_device`): on a worker without a GPU it
    falls back to the CPU and records why, or fails when the policy is ``fail``. Data that cannot
    make a trustworthy model fails the task without retries (the numbers are in the message).

    :param training_set: lake prefix of the training set (templated).
    :param overrides: hyperparameters for this run, None values ignored (templated).
    :param device: ``cuda`` or ``cpu`` (templated).
    """

    template_fields = ("training_set", "overrides", "device")
    ui_color = "#fff2cc"

    def __init__(self, *, training_set: str, overrides: dict | None = None, device: str = "cuda", **kwargs):
        super().__init__(**kwargs)
        self.training_set = training_set
        self.overrides = overrides
        self.device = device

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowFailException

        from airloop.core.devices import GpuUnavailable, choose_device
        from airloop.training import TrainingDataError, load_training_set, publish_candidate, train_candidate

        try:
            choice = choose_device(self.device or "cuda")
        except (GpuUnavailable, ValueError) as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("Device %s (requested %s, policy %s): %s", choice.device, choice.requested, choice.policy, choice.reason)
        lake = self.lake_hook.lake
        training_set = load_training_set(lake, self.training_set)
        overrides = {k: v for k, v in (self.overrides or {}).items() if v not in (None, "", "None")}
        try:
            candidate = train_candidate(training_set, self.spec, device=choice, overrides=overrides)
        except TrainingDataError as exc:
            raise AirflowFailException(f"training data refused: {exc}") from None
        summary = publish_candidate(candidate, training_set, lake, self.spec)
        m, b = summary["metrics"], summary["baseline_metrics"]
        self.log.info(
            "Trained on %d rows (%s .. %s) in %.1f s on %s; holdout %s .. %s (%d rows): "
            "XGBoost roc_auc %.4f log_loss %.4f brier %.4f | baseline roc_auc %.4f log_loss %.4f brier %.4f",
            summary["split"]["train_rows"], summary["split"]["train_start"], summary["split"]["train_end"],
            summary["timings"]["xgboost_fit_s"], choice.device, summary["split"]["valid_start"],
            summary["split"]["valid_end"], summary["split"]["valid_rows"],
            m["roc_auc"], m["log_loss"], m["brier"], b["roc_auc"], b["log_loss"], b["brier"],
        )  # fmt: skip
        return summary


class ChampionChallengerOperator(_ModelStageOperator):
    """Score the challenger and the current champion on the same holdout and decide.

    Without a champion the challenger must beat the baseline. The decision and every number
    behind it go to the log and to XCom (the promote task applies it).

    :param training_set: lake prefix of the training set (templated).
    :param candidate: lake prefix of the challenger's artifacts (templated).
    """

    template_fields = ("training_set", "candidate")
    ui_color = "#fce5cd"

    def __init__(self, *, training_set: str, candidate: str, **kwargs):
        super().__init__(**kwargs)
        self.training_set = training_set
        self.candidate = candidate

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowFailException

        from airloop.registry import ArtifactIntegrityError
        from airloop.training import evaluate_candidate, format_decision, load_candidate, load_training_set

        lake = self.lake_hook.lake
        try:
            decision = evaluate_candidate(
                load_candidate(lake, self.candidate),
                load_training_set(lake, self.training_set),
                self.spec,
                registry=self.registry_hook.registry,
                lake=lake,
            )
        except ArtifactIntegrityError as exc:
            raise AirflowFailException(str(exc)) from None
        for line in format_decision(decision).splitlines():
            self.log.info("%s", line)
        return decision


class ModelRegisterOperator(_ModelStageOperator):
    """Copy the challenger into ``models/<name>/v<N>/`` and record version N in the registry.

    With ``decision`` (the gate's), the version's model card is written beside the model
    (``model_card.{json,html,md}``, :mod:`airloop.training.model_card`) from the candidate's
    training set. Idempotent per DAG run: a retry returns the version registered before.

    :param candidate: lake prefix of the challenger's artifacts (templated).
    :param decision: the gate's decision dict (templated, from the evaluate task), or None: no card.
    """

    template_fields = ("candidate", "decision")
    ui_color = "#d9ead3"

    def __init__(self, *, candidate: str, decision=None, **kwargs):
        super().__init__(**kwargs)
        self.candidate = candidate
        self.decision = decision

    def execute(self, context):
        from airloop.lineage.graph import model_key
        from airloop.training import load_candidate, load_training_set, register_candidate

        lake = self.lake_hook.lake
        candidate = load_candidate(lake, self.candidate)
        decision = _blank(self.decision)
        training_set = None
        if decision is not None:
            decision = decision if isinstance(decision, dict) else _parse(decision)
            prefix = candidate.metadata.get("training_set_prefix")
            if prefix:
                training_set = load_training_set(lake, prefix)
            else:
                self.log.warning("Candidate %s names no training set: no model card", self.candidate)
        mv = register_candidate(
            candidate,
            self.spec,
            registry=self.registry_hook.registry,
            lake=lake,
            run_id=self.run_id(context),
            training_set=training_set,
            decision=decision,
        )
        self.log.info("Registered %s (%s, device %s) at %s", mv.label, mv.status, mv.device, mv.artifact_uri)
        self.record_lineage([model_key(mv.model_name, mv.version)])
        if (mv.metrics or {}).get("model_card"):
            self.log.info("Model card of %s stored beside it (%s)", mv.label, ", ".join(sorted(mv.metrics["model_card"].values())))
        return {"model_name": mv.model_name, "version": mv.version, "artifact_uri": mv.artifact_uri, "sha256": mv.sha256}


class ModelPromoteOperator(_ModelStageOperator):
    """Apply the gate's decision: promote the version, or record the refusal and keep the champion.

    Promotion is a compare-and-swap on the champion alias: it only happens while the champion is
    still the one the challenger was compared with. A promotion updates the ``MODEL`` outlet with
    ``extra={"model_name", "version", "previous_version", "action"}``; a refusal skips the task,
    so no asset event is emitted and the run shows the champion was kept.

    With ``approval`` (the answer of ``PromotionApprovalOperator``, when
    ``AIRLOOP_PROMOTION_APPROVAL=approve``), a person's review decides over a promotion the gate
    allowed (:func:`airloop.training.approval.apply_review`): approved promotes, rejected or no
    answer in time keeps the champion; the history names who decided and why.

    :param version: the registered version (templated).
    :param decision: the gate's decision dict (templated, from the evaluate task).
    :param reason: why this run trained (templated, recorded in the history).
    :param approval: the review dict (templated, from the approval task), or None.
    """

    template_fields = ("version", "decision", "reason", "approval")
    ui_color = "#b6d7a8"

    def __init__(self, *, version, decision, reason: str = "", approval=None, **kwargs):
        super().__init__(**kwargs)
        self.version = version
        self.decision = decision
        self.reason = reason
        self.approval = approval

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from airloop.registry import PromotionConflict
        from airloop.training import apply_decision
        from airloop.training.approval import apply_review

        registry = self.registry_hook.registry
        mv = registry.get(self.spec.name, int(self.version))
        decision = self.decision if isinstance(self.decision, dict) else _parse(self.decision)
        review = _blank(self.approval)
        review = review if review is None or isinstance(review, dict) else _parse(review)
        try:
            decision, reviewer = apply_review(decision, review)
        except ValueError as exc:
            raise AirflowFailException(f"cannot apply the review {review!r}: {exc}") from None
        actor = f"{reviewer} via {self.run_id(context)}" if reviewer else self.actor(context)
        try:
            entry = apply_decision(
                decision, mv, registry=registry, actor=actor, run_id=self.run_id(context),
                reason=_blank(self.reason) or "",
            )  # fmt: skip
        except PromotionConflict as exc:
            raise AirflowFailException(str(exc)) from None
        if entry.action == "refuse":
            self.log.info("Kept the champion (%s); %s is rejected: %s", _v(entry.to_version), mv.label, decision["reason"])
            who = "review" if (review or {}).get("asked") else "gate"
            raise AirflowSkipException(f"{who} kept the champion: {decision['reason']}")
        self.log.info("Promoted %s to champion (was %s): %s", mv.label, _v(entry.from_version), entry.reason)
        extra = {"model_name": mv.model_name, "version": mv.version, "previous_version": entry.from_version, "action": "promote"}
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = extra
        return extra


class ModelRollbackOperator(_ModelStageOperator):
    """Make an earlier champion the champion again (``to``: a version number or ``previous``).

    Goes through :meth:`airloop.registry.ModelRegistry.rollback` (the CLI does too): the target's
    artifact is verified first and the rollback is recorded in the history. Updates the ``MODEL``
    outlet. A target that does not exist or never served fails the task without retries.

    :param to: ``previous`` or a version number (templated).
    :param reason: why (templated; required).
    :param model_name: the registry model (default: the use case's).
    """

    template_fields = ("to", "reason", "model_name")
    ui_color = "#f4cccc"

    def __init__(self, *, to="previous", reason: str, model_name: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.to = to
        self.reason = reason
        self.model_name = model_name

    def execute(self, context):
        from airflow.sdk.exceptions import AirflowFailException

        from airloop.registry import RegistryError

        name = _blank(self.model_name) or self.spec.name
        reason = (_blank(self.reason) or "").strip()
        if not reason:
            raise AirflowFailException("a rollback needs a reason (the 'reason' param)")
        try:
            entry = self.registry_hook.registry.rollback(
                name, str(self.to).strip(), reason=reason, actor=self.actor(context), run_id=self.run_id(context),
                lake=self.lake_hook.lake,
            )  # fmt: skip
        except RegistryError as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("Rolled %s back from %s to %s: %s", name, _v(entry.from_version), _v(entry.to_version), reason)
        extra = {"model_name": name, "version": entry.to_version, "previous_version": entry.from_version, "action": "rollback"}
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = extra
        return extra


def _blank(value):
    """Templated None renders as 'None' or ''; treat both as not given."""
    return None if value in (None, "", "None") else value


def _parse(value):
    import ast

    return ast.literal_eval(value) if isinstance(value, str) else dict(value)


def _v(version) -> str:
    return "none" if version is None else f"v{version}"
