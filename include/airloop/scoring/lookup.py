"""The feature lookup: the features of the rows to score as of one instant, per entity, cached.

:class:`FeatureLookup` is the features stage behind the small interface scoring needs
(``service_name``, ``columns``, ``input_partitions``, ``lookup``); tests and benchmarks pass
another object with the same methods.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from airloop.core.storage import Lake
from airloop.scoring.errors import ScoringError, UpstreamNotReadyError
from airloop.scoring.upstream import upstream_partitions

if TYPE_CHECKING:
    import pandas as pd

    from airloop.core.config import Settings
    from airloop.core.dates import LogicalDay
    from airloop.core.usecase import UseCase


class FeatureLookup:
    """Features of the rows to score, as of one instant: the features stage behind one interface.

    Pass another object with the same methods (``service_name``, ``columns``,
    ``input_partitions``, ``lookup``) to score with other features (tests, benchmarks).

    :param feature_service: the Feast feature service (default: the use case's).
    :param lake: the lake to read feature partitions from (default: the settings').
    """

    def __init__(self, settings: "Settings", feature_service: str | None = None, *, lake: Lake | None = None, use_case=None):
        self.settings = settings
        self.feature_service = feature_service
        self.lake = lake
        self.use_case = use_case

    @property
    def service_name(self) -> str:
        from airloop import features

        return self.feature_service or features.default_feature_service(self.settings)

    def columns(self) -> list[str]:
        """The model inputs this service provides as registered (request-time columns, then features)."""
        return [*self._use_case.features.request_columns, *self.layout.feature_names]

    @cached_property
    def _use_case(self) -> "UseCase":
        from airloop.core.usecase import load_use_case

        return self.use_case or load_use_case(self.settings.use_case)

    def input_partitions(self, day: "LogicalDay") -> list[str]:
        """Lake prefixes checked (and recorded as lineage) before ``day`` is scored."""
        return upstream_partitions(day, self._use_case, {view.name: view.lake_prefix for view in self.layout.views})

    @cached_property
    def layout(self):
        """The service's registered layout, without importing Feast when the lake's record is current."""
        # By module path: ``airloop.features.registered_layout`` names the submodule, not its function.
        from airloop.features.registered_layout import registered_layout

        return registered_layout(self.settings, self.service_name, lake=self.lake)

    def lookup(self, rows: "pd.DataFrame", as_of: datetime) -> "pd.DataFrame":
        """One row per row of ``rows`` (same order): the model inputs (:meth:`columns`), float64.

        At one instant, each view's features depend only on that view's join keys: the latest
        row per entity. So the lookup asks :func:`airloop.features.features_as_of` once per
        *entity* (per view), never per row, keeps the answers for the next chunks of the same
        instant, and maps them onto the rows by the keys' codes. The cost then grows with the
        entities of the day (carriers, routes, aircraft), not with its rows; the values are
        those of ``features_as_of`` on the rows themselves.
        """
        import numpy as np
        import pandas as pd

        from airloop import features

        entities = features.entity_rows(rows, settings=self.settings)
        if getattr(self, "_as_of", None) != as_of:
            self._as_of, self._latest = as_of, {}
        columns = self.input_columns
        # Column-major: one contiguous row of `by_column` per input, the frame's single block.
        by_column = np.empty((len(columns), len(entities)), dtype="float64")
        position = {c: i for i, c in enumerate(columns)}
        for name in columns:
            if name in entities.columns:  # request-time columns come from the row itself
                by_column[position[name]] = entities[name].to_numpy(dtype="float64", na_value=np.nan)
        codes = {}
        for view in self.layout.views:
            keys = tuple(view.join_keys)
            if keys not in codes:
                codes[keys] = _key_index(entities, list(keys)).factorize(use_na_sentinel=False)
        self._fetch_new_entities({view.name: codes[tuple(view.join_keys)][1] for view in self.layout.views}, entities, as_of)
        for view in self.layout.views:
            row_codes, uniques = codes[tuple(view.join_keys)]
            index, values = self._latest[view.name]
            where = index.get_indexer(uniques)[row_codes]
            if len(where) and where.min() < 0:  # every key is known by now
                raise ScoringError(f"feature lookup lost track of entities of view {view.name!r}")
            for j, name in enumerate(view.features):
                # mode="clip" (indices checked above) lets numpy write straight into `out`.
                np.take(values[:, j], where, out=by_column[position[name]], mode="clip")
        return pd.DataFrame(by_column.T, columns=columns, index=entities.index, copy=False)

    @cached_property
    def input_columns(self) -> list[str]:
        return self.columns()

    def _fetch_new_entities(self, uniques: dict, entities: "pd.DataFrame", as_of: datetime) -> None:
        """Look up, once, the entities (per view: ``uniques[view]``) not seen yet at this instant."""
        import numpy as np
        import pandas as pd

        from airloop import features

        segments, wanted = [], []
        for view in self.layout.views:
            keys = list(view.join_keys)
            new = uniques[view.name]
            if view.name in self._latest:
                new = new[self._latest[view.name][0].get_indexer(new) < 0]
            frame = new.to_frame(index=False, name=keys) if len(keys) > 1 else pd.DataFrame({keys[0]: new})
            wanted.append((view, new))
            segments.append(frame)
        if not any(len(new) for _, new in wanted):
            return
        # One probe frame: each view's new keys in its own segment; the other views' keys are
        # filled with a valid placeholder (their answers in that segment are not used).
        join_keys = self.layout.join_keys
        filler = entities[join_keys].iloc[0]
        dtypes = {k: entities[k].dtype for k in join_keys}  # each segment typed first: an all-null one stays typed
        probe = pd.concat(
            [
                seg.assign(**{k: filler[k] for k in join_keys if k not in seg.columns})[join_keys].astype(dtypes)
                for seg in segments
                if len(seg)
            ],
            ignore_index=True,
        )
        try:
            found = features.features_as_of(
                probe, as_of, settings=self.settings, feature_service=self.service_name, lake=self.lake, layout=self.layout
            )
        except features.MissingFeaturePartition as exc:
            raise UpstreamNotReadyError(str(exc)) from None
        if len(found) != len(probe):
            raise ScoringError(f"features_as_of returned {len(found)} rows for {len(probe)} entities")
        offset = 0
        for view, new in wanted:
            part = found.iloc[offset : offset + len(new)]
            offset += len(new)
            # Keyed by the probe's own keys (same dtype and nulls as the rows to score), not by
            # the keys echoed back, whose nulls and dtype come back changed through Arrow.
            values = np.asfortranarray(part[list(view.features)].to_numpy(dtype="float64", na_value=np.nan))
            if view.name in self._latest:
                index, known = self._latest[view.name]
                self._latest[view.name] = (index.append(new), np.concatenate([known, values]))
            else:
                self._latest[view.name] = (new, values)


def _key_index(frame: "pd.DataFrame", keys: list[str]):
    import pandas as pd

    if len(keys) == 1:
        return pd.Index(frame[keys[0]])
    return pd.MultiIndex.from_frame(frame[keys])
