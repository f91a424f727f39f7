"""The Confluence client: endpoints, transport (retries, Retry-After, the deadline), errors, the allowlist."""
