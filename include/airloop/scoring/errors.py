"""Why scoring refuses or fails: one exception per refusal, each message saying what to do."""

from __future__ import annotations


class ScoringError(RuntimeError):
    """Scoring refused or failed; the message says what is wrong and what to do."""


class NoChampionError(ScoringError):
    """No model version can be chosen for the day (nothing registered, or nothing serving then)."""


class FeatureMismatchError(ScoringError):
    """The model expects feature columns that its feature service does not provide."""


class UpstreamNotReadyError(ScoringError):
    """An upstream partition the scoring needs is not published yet."""


class UpstreamCorruptError(ScoringError):
    """An upstream partition does not match its manifest (partial or corrupt files)."""


class NoScheduleError(ScoringError):
    """The source holds no scheduled rows for the day (outside the replayed range)."""
