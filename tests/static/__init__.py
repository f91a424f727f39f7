"""The panel's files (static/): the vendored bridge build, the type check."""
