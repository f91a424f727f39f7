"""Forge: FIT verification, Forge's key sets, offline user tokens and the scopes the app uses."""
