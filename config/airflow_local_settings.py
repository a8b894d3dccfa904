"""Airflow imports this module first thing in every process (``$AIRFLOW_HOME/config`` is on its path).

Airloop uses it for one thing: the processes that fork task processes (the scheduler's
LocalExecutor, a Celery worker) import the stage libraries once, so that each task process starts
with them already loaded (see ``airloop.deploy.preload``; ``AIRLOOP_PRELOAD=off`` turns it off).
"""

try:
    from airloop.deploy.preload import preload_for_process
except ImportError:  # the library is not installed in this environment: nothing to preload
    pass
else:
    preload_for_process()
