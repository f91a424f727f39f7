"""Confluence: the client (endpoints, admin check, probes), its transport, results and errors, and
the one allowlist rule for where tokens may go."""
