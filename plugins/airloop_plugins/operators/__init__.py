from airloop_plugins.operators.ingest import DataContractOperator, SourceExtractOperator

__all__ = ["DataContractOperator", "SourceExtractOperator"]
