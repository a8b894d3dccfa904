"""The Airloop Airflow plugin: pages inside the Airflow UI and the report link of report tasks.

* ``fastapi_apps``: the pages' app at ``/airloop`` (authenticated: see :mod:`.app`).
* ``external_views`` with ``url_route``: *Airloop > Model versions* and *Airloop > Monitoring*
  in the navigation; the UI renders them in its own frame (``/plugin/airloop-models``, ...).
* ``operator_extra_links``: the *Evidently report* button of drift and performance report tasks.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airloop_plugins.operators.monitoring import EvidentlyReportLink
from airloop_plugins.ui.app import URL_PREFIX, app


class AirloopUIPlugin(AirflowPlugin):
    name = "airloop"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Airloop pages"}]
    external_views = [
        {"name": "Model versions", "href": f"{URL_PREFIX}/models", "destination": "nav",
         "category": "Airloop", "url_route": "airloop-models"},
        {"name": "Monitoring", "href": f"{URL_PREFIX}/monitoring", "destination": "nav",
         "category": "Airloop", "url_route": "airloop-monitoring"},
        {"name": "Backtest", "href": f"{URL_PREFIX}/backtest", "destination": "nav",
         "category": "Airloop", "url_route": "airloop-backtest"},
        {"name": "Backfills", "href": f"{URL_PREFIX}/backfills", "destination": "nav",
         "category": "Airloop", "url_route": "airloop-backfills"},
    ]  # fmt: skip
    operator_extra_links = [EvidentlyReportLink()]
