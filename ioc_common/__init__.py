"""Small pieces shared by the edge agent and the central service: retry backoff, YAML config files."""
