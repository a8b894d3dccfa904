from airloop_plugins.hooks.lake import LakeHook
from airloop_plugins.hooks.source import SourceHook

__all__ = ["LakeHook", "SourceHook"]
