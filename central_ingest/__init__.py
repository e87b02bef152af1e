"""Central ingest: validates, stores and queries the events agents send."""
