"""OpenLineage for Airloop's operators: each task run names the partitions it published.

An operator calls :meth:`LineageMixin.record_lineage` in ``execute`` with the lake keys it wrote;
the OpenLineage provider's listener then calls ``get_openlineage_facets_on_complete`` (the
provider's ``DefaultExtractor`` contract) and gets the inputs and outputs of
:func:`airloop.lineage.stage_lineage`, as OpenLineage datasets (:mod:`airloop_plugins.lineage_facets`).

Nothing here imports OpenLineage: the provider calls the method only when its listener is on
(a transport is configured), and only then are the client's classes imported.
"""

from __future__ import annotations


class LineageMixin:
    """Adds ``get_openlineage_facets_on_complete`` to an operator that records its outputs."""

    def record_lineage(self, outputs) -> None:
        """Remember the lake keys this run published (partition prefixes, ``models/<name>/v<N>``)."""
        self._lineage_outputs = [str(o) for o in outputs if o]

    def get_openlineage_facets_on_complete(self, task_instance):
        """The run's inputs and outputs as OpenLineage datasets (called by the provider's listener)."""
        from airloop_plugins.lineage_facets import operator_lineage

        outputs = getattr(self, "_lineage_outputs", None)
        if not outputs:  # nothing published (a sensor, a skip, a failure before publishing)
            from airflow.providers.openlineage.extractors import OperatorLineage

            return OperatorLineage()
        lake_hook = getattr(self, "lake_hook", None)
        if lake_hook is None:
            from airloop_plugins.hooks import LakeHook

            lake_hook = LakeHook()
        settings = getattr(self, "settings", None)
        return operator_lineage(lake_hook.lake, outputs, source_url=getattr(settings, "source_url", "") or "")
