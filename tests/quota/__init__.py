"""Confluence's points quota: the ledger, the shared ledger between instances, the rate-limit headers."""
