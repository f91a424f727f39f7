"""Confluence's points quota: the ledger, the rate-limit headers, pools, costs and fair shares."""
