"""Models: local paths, dtype and device choice."""
