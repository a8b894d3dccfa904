"""Where and how tasks run: DAG conventions, resource routing (pools, queues, Kubernetes pods),
the services profile and ``airloop setup``. Light: DAG files import it at parse time.
"""
