"""Airloop: the life of a production ML model as Airflow 3 DAGs."""

__version__ = "0.1.0"
