"""Model choice: the model version that scores a day, and the check that its inputs still exist.

:func:`choose_model`: a pinned version when given; otherwise the champion that was serving at
the day's prediction time (``ModelRegistry.champion_at``), or at *now* when that instant is
still ahead (*now* from the clock passed in: the real time at the boundary, the replayed
instant in a backtest). For the nightly run the two coincide with "the champion at run time"; for a
backfill of past days it reproduces history instead of rewriting it with today's model, and a
rerun of any day picks the same model again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

from airloop.core.clock import clock_or_system
from airloop.scoring.errors import FeatureMismatchError, NoChampionError, ScoringError

if TYPE_CHECKING:
    from airloop.core.clock import Clock


@dataclass(frozen=True)
class ModelChoice:
    """The model version that scores a day, and why it was chosen.

    :param policy: ``pinned`` or ``serving_at`` (the champion serving at ``instant``).
    """

    version: Any
    policy: str
    instant: datetime | None = None

    @property
    def description(self) -> str:
        if self.policy == "pinned":
            return f"v{self.version.version} (pinned)"
        return f"v{self.version.version} (champion serving at {self.instant.isoformat()})"


def choose_model(
    registry,
    model_name: str,
    as_of: datetime,
    *,
    pinned: int | str | None = None,
    now: datetime | None = None,
    clock: "Clock | None" = None,
) -> ModelChoice:
    """Choose the model version that scores the day whose prediction time is ``as_of``.

    :param pinned: a version number; wins over the policy.
    :param now: the current instant; default ``clock.now()``.
    :param clock: default: the real time (a backtest passes its replayed clock).
    :raises NoChampionError: nothing pinned and no champion serving at that instant.
    """
    if pinned not in (None, ""):
        try:
            number = int(pinned)
        except (TypeError, ValueError):
            raise ScoringError(f"model_version must be a version number, got {pinned!r}") from None
        try:
            mv = registry.get(model_name, number)
        except LookupError as exc:  # the registry's VersionNotFound names the versions it has
            raise NoChampionError(f"cannot pin model_version={number}: {exc}") from None
        return ModelChoice(mv, "pinned")
    now = now or clock_or_system(clock).now()
    instant = min(as_of, now)
    mv = registry.champion_at(model_name, instant)
    if mv is not None:
        return ModelChoice(mv, "serving_at", instant)
    current = registry.champion(model_name)
    if current is None:
        raise NoChampionError(
            f"no champion of model {model_name!r} is registered: run the train_model DAG "
            f"(or `airloop train`) to train and promote one, or pin a version with model_version=N"
        )
    raise NoChampionError(
        f"no champion of model {model_name!r} was serving at {instant.isoformat()} (the prediction "
        f"time of the day); the current champion v{current.version} was promoted later. A backfill "
        f"scores a past day with the model that served it; to score it with another, pin it: "
        f"model_version={current.version}"
    )


def check_feature_columns(model_columns: Iterable[str], provided: Iterable[str], *, model: str, service: str) -> None:
    """Refuse (before scoring) when the model expects columns the feature service lacks."""
    provided = list(provided)
    missing = [c for c in model_columns if c not in provided]
    if missing:
        raise FeatureMismatchError(
            f"model {model} expects features {missing} that feature service {service!r} no longer "
            f"provides (it has {provided}); retrain the model on the current service, or restore "
            f"those features"
        )
