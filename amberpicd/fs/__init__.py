"""Filesystem primitives the engine relies on (file identity)."""
