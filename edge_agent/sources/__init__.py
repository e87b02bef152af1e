"""Frame sources: camera streams and files decoded into ``Frame`` values."""

from edge_agent.sources.pyav_reader import PyAVReader, ReaderConfig, ReaderStats, SourceGaveUpError

__all__ = ["PyAVReader", "ReaderConfig", "ReaderStats", "SourceGaveUpError"]
