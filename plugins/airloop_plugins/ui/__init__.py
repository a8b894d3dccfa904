"""Airloop's pages inside the Airflow UI: model versions and monitoring (see ``plugin.py``)."""
