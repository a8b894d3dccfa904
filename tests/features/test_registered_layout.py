"""Registered feature-service layouts read without Feast, and never staler than the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from airloop import features as F
from airloop.features import registered_layout as R
from feature_helpers import D0, D1, leakage_lake, logical_day
from testkit import repo_copy

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SERVICE = "flight_delay_v1"

# A fresh process, as every Airflow task is: which layout did it get, and did it import Feast?
READ_IN_FRESH_PROCESS = """
import json, sys
from airloop.core.config import Settings
from airloop.features.registered_layout import layout_to_dict, registered_layout
layout = registered_layout(Settings.from_env(), sys.argv[1])
print(json.dumps({"layout": layout_to_dict(layout), "feast_imported": "feast" in sys.modules}))
"""


def read_in_fresh_process(settings, service: str = SERVICE) -> dict:
    env = dict(os.environ)  # the settings fixture put its locations there
    out = subprocess.run([sys.executable, "-c", READ_IN_FRESH_PROCESS, service], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def record_path(settings, lake):
    project, _ = R._registry_location(settings)
    return R.record_key(project, SERVICE)


def stamp_now(settings, layout) -> str | None:
    project, url = R._registry_location(settings)
    return R.registry_stamp(url, project, layout.name, [v.name for v in layout.views])


def test_apply_records_every_service_and_a_fresh_process_reads_it_without_feast(settings, lake):
    store = F.feature_store(settings)
    F.apply_definitions(settings, store=store)
    assert lake.exists(record_path(settings, lake))
    got = read_in_fresh_process(settings)
    assert got["feast_imported"] is False
    assert R.layout_from_dict(got["layout"]) == F.service_layout(store, SERVICE, allow_cache=False)


def test_layout_round_trips_through_its_record(settings, lake):
    store = F.feature_store(settings)
    F.apply_definitions(settings, store=store)
    layout = F.service_layout(store, SERVICE)
    assert R.layout_from_dict(json.loads(json.dumps(R.layout_to_dict(layout)))) == layout
    assert any(v.ttl is not None for v in layout.views) and any(v.daily_snapshot for v in layout.views)


def test_materialization_leaves_the_stamp_alone(settings, lake):
    """Materializing rewrites each view's meta (intervals, state), not its spec: the record stays valid.

    Airloop's materialization writes the online store only; Feast's own (``feast materialize``)
    also records its interval on every view in the registry. Both are done here.
    """
    from datetime import datetime, timezone

    leakage_lake(lake)
    store = F.feature_store(settings)
    F.apply_definitions(settings, store=store)
    layout = F.service_layout(store, SERVICE, allow_cache=False)
    before = stamp_now(settings, layout)
    for day in (D0, D1):
        F.compute_features(logical_day(day), settings=settings, lake=lake)
    F.materialize(logical_day(D0), logical_day(D1), settings=settings, store=store, lake=lake)
    start, end = datetime(2025, 12, 30, tzinfo=timezone.utc), datetime(2026, 1, 1, tzinfo=timezone.utc)
    for view in layout.views:
        registered_view = store.registry.get_feature_view(view.name, store.project, allow_cache=False)
        store.registry.apply_materialization(registered_view, store.project, start, end)
    assert store.registry.get_feature_view("origin_weather", store.project, allow_cache=False).materialization_intervals
    assert before is not None and stamp_now(settings, layout) == before
    assert read_in_fresh_process(settings)["feast_imported"] is False


def test_a_registry_changed_behind_airloops_back_is_noticed(settings, lake, tmp_path):
    """A plain ``store.apply`` (as ``feast apply`` would do) changes a view's TTL: the record is stale."""
    store = F.feature_store(settings)
    F.apply_definitions(settings, store=store)
    old = F.service_layout(store, SERVICE, allow_cache=False)
    changed = settings.with_overrides(
        feature_repo=repo_copy(tmp_path, lambda t: t.replace("WEATHER_TTL = DAILY_SNAPSHOT_TTL", "WEATHER_TTL = timedelta(hours=7)"))
    )
    store.apply(F.load_definitions(changed).objects)  # not through apply_definitions: no new record
    assert stamp_now(settings, old) != json.loads(lake.read_bytes(record_path(settings, lake)))["stamp"]

    got = read_in_fresh_process(settings)
    assert got["feast_imported"] is True  # the record could not be trusted: Feast was asked
    weather = next(v for v in R.layout_from_dict(got["layout"]).views if v.name == "origin_weather")
    assert weather.ttl.total_seconds() == 7 * 3600
    # ... and its answer recorded: the next process reads it without Feast.
    again = read_in_fresh_process(settings)
    assert again["feast_imported"] is False and again["layout"] == got["layout"]


@pytest.mark.parametrize("damage", [b"{not json", b'{"stamp": "x"}', b'{"stamp": "0", "layout": {"name": "flight_delay_v1", "views": []}}'])
def test_a_damaged_or_forged_record_is_not_trusted(settings, lake, damage):
    store = F.feature_store(settings)
    F.apply_definitions(settings, store=store)
    expected = F.service_layout(store, SERVICE, allow_cache=False)
    lake.write_bytes(record_path(settings, lake), damage)
    assert R.registered_layout(settings, SERVICE, lake=lake) == expected
    # Replaced by a good record.
    assert json.loads(lake.read_bytes(record_path(settings, lake)))["stamp"] == stamp_now(settings, expected)


def test_without_a_registry_yet_the_stamp_is_none_and_no_file_is_created(settings):
    project, url = R._registry_location(settings)
    path = url.removeprefix("sqlite:///")
    assert not os.path.exists(path)
    assert R.registry_stamp(url, project, SERVICE, ["origin_weather"]) is None
    assert not os.path.exists(path)


def test_an_unknown_service_is_refused_with_the_way_out(settings, lake):
    F.apply_definitions(settings)
    with pytest.raises(F.FeatureError, match="flight_delay_v9.*airloop setup"):
        R.registered_layout(settings, "flight_delay_v9", lake=lake)


def test_field_numbers_match_feasts_protos():
    from feast.protos.feast.core.Entity_pb2 import Entity, EntitySpecV2
    from feast.protos.feast.core.FeatureService_pb2 import FeatureService, FeatureServiceSpec
    from feast.protos.feast.core.FeatureView_pb2 import FeatureView, FeatureViewSpec

    for kind, message, spec in (("entity", Entity, EntitySpecV2), ("service", FeatureService, FeatureServiceSpec), ("view", FeatureView, FeatureViewSpec)):
        assert message.DESCRIPTOR.fields_by_name["spec"].number == R.SPEC_FIELD
        assert spec.DESCRIPTOR.fields_by_name["project"].number == R.PROJECT_FIELD[kind]


def test_spec_digest_ignores_the_project_and_nothing_else():
    spec = b"\x0a\x01a" + b"\x12\x07airloop" + b"\x1a\x01e"  # name, project, one more field
    without_project = b"\x0a\x01a" + b"\x1a\x01e"
    wrap = lambda s: b"\x0a" + bytes([len(s)]) + s + b"\x12\x01z"  # noqa: E731  (spec, then meta)
    assert R.spec_digest("view", wrap(spec)) == R.spec_digest("view", wrap(without_project))
    assert R.spec_digest("view", wrap(spec)) != R.spec_digest("view", wrap(b"\x0a\x01a" + b"\x1a\x01f"))
    assert R.spec_digest("entity", wrap(spec)) != R.spec_digest("entity", wrap(without_project))  # field 2 is not its project


def test_spec_of_takes_field_one_of_a_serialized_message():
    # field 1 (spec), length 3, "abc"; field 2 (meta), length 1, "z"
    assert R.spec_of(b"\x0a\x03abc\x12\x01z") == b"abc"
    with pytest.raises(ValueError, match="0 spec fields"):
        R.spec_of(b"\x12\x01z")


LIST_IN_FRESH_PROCESS = """
import sys
from airloop.cli import main
status = main(["features", "list"])
print("feast_imported=%s" % ("feast" in sys.modules))
sys.exit(status)
"""


def test_features_list_reads_the_registered_layout_without_feast(settings, lake):
    """`airloop features list` answers from the recorded layout once applied (no 6-8 s Feast import)."""
    store = F.feature_store(settings)
    F.apply_definitions(settings, store=store)
    out = subprocess.run([sys.executable, "-c", LIST_IN_FRESH_PROCESS], env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "flight_delay_v1" in out.stdout and "as registered" in out.stdout
    assert "feast_imported=False" in out.stdout
    layout = F.service_layout(store, SERVICE, allow_cache=False)
    assert all(name in out.stdout for name in layout.feature_names)


def test_features_list_before_any_apply_reads_the_definitions(settings):
    out = subprocess.run([sys.executable, "-c", LIST_IN_FRESH_PROCESS], env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "from feature_repo/definitions.py" in out.stdout
