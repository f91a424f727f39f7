"""Forge: FIT verification, key sets, offline tokens, the manifest."""
