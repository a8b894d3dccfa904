from airloop_plugins.hooks.feature_store import FeatureStoreHook
from airloop_plugins.hooks.lake import LakeHook
from airloop_plugins.hooks.source import SourceHook

__all__ = ["FeatureStoreHook", "LakeHook", "SourceHook"]
