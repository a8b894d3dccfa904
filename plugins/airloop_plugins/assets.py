"""The Airflow Assets Airloop's DAGs produce and consume (light: imported at parse time).

Each asset event carries ``extra={"ds": "YYYY-MM-DD", ...}`` naming the partition it updated.
"""

from airflow.sdk import Asset

RAW_FLIGHTS = Asset(name="airloop_raw_flights", uri="airloop://lake/raw/flights", group="airloop")
RAW_WEATHER = Asset(name="airloop_raw_weather", uri="airloop://lake/raw/weather", group="airloop")
FEATURES = Asset(name="airloop_features", uri="airloop://lake/features", group="airloop")
MODEL = Asset(name="airloop_champion_model", uri="airloop://registry/champion", group="airloop")
PREDICTIONS = Asset(name="airloop_predictions", uri="airloop://lake/predictions", group="airloop")
DRIFT = Asset(name="airloop_drift", uri="airloop://monitoring/drift", group="airloop")

RAW_TABLE_ASSETS = {"flights": RAW_FLIGHTS, "weather": RAW_WEATHER}
