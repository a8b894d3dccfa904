"""Airflow-facing parts of Airloop: hooks (one external system each), operators (one lifecycle
stage each), assets and the UI plugin. Thin wrappers over the ``airloop`` library."""
