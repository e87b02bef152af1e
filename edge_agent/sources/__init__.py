"""Frame sources: camera streams and files decoded into ``Frame`` values."""

from edge_agent.sources.config import ReaderConfig
from edge_agent.sources.pyav_reader import PyAVReader, SourceGaveUpError
from edge_agent.sources.status import ReaderState, ReaderStats, StateChange

__all__ = ["PyAVReader", "ReaderConfig", "ReaderState", "ReaderStats", "SourceGaveUpError", "StateChange"]
