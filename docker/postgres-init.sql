-- Airloop's databases beside Airflow's (POSTGRES_DB=airflow is created by the image):
-- airloop (model registry, scoring/monitoring tables, Feast registry and offline store) and
-- airloop_source (the replayed upstream data). Runs once, on an empty data volume.
CREATE DATABASE airloop;
CREATE DATABASE airloop_source;
