from airloop_plugins.operators.features import FeastApplyOperator, FeastMaterializeOperator, FeatureComputeOperator
from airloop_plugins.operators.ingest import DataContractOperator, SourceExtractOperator

__all__ = [
    "DataContractOperator",
    "FeastApplyOperator",
    "FeastMaterializeOperator",
    "FeatureComputeOperator",
    "SourceExtractOperator",
]
