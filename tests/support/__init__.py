"""What the tests share besides tests/conftest.py: the simulated client, the store backends, a JWKS
server."""
