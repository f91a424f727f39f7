"""Alembic's migrations of the store (package data: env.py, script.py.mako, versions/)."""
