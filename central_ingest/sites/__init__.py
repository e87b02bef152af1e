"""The registry of camera and sensor sites (where each source stands), for maps and the police search."""
