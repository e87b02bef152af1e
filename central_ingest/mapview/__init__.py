"""Where things stand now: the map's sites with their live state, and the agents' health.

``states`` holds the pure rules that turn "what was last heard" into live / stalled / down / unknown and a
sensor reading into its alert level; ``sources`` reads those facts from the database; ``routes`` (the map API)
and ``health_routes`` (the agent health API) answer the pages, each filtered by the caller's area scope.
"""
