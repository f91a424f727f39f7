"""Benchmarks: figures, not pass/fail. Run one as a module from the repository root:
``.venv/bin/python -m bench.<name>`` (see bench/README.md)."""
