"""What the Confluence client raises, and the failure reasons it reports.

Failure reasons (``UpstreamError.reason``, ``results.Failure.error``): ``rate_limited``,
``unavailable``, ``timeout``, ``connection_error``, ``api_disabled`` (a 503 WITHOUT ``Retry-After``
from the experimental email endpoints: Atlassian's OpenAPI document says "Returned if API is
disabled on site"; never retried, since waiting does not help: ``API_DISABLED_HELP`` says what the
site admin can do), ``not_permitted`` (401/403/404), ``rejected: <detail>`` (400 and other 4xx),
``upstream_error <status>`` (other statuses), ``bad_response`` (a 2xx body we cannot read).

Errors::

    ConfluenceError
     +-- UntrustedHost    the api_base_url is under none of the allowlisted prefixes
     +-- OfflineOperation an offline client asked for an operation no impersonated scope covers
     +-- UpstreamError    a request failed for good: .reason, .status (None: no answer),
                          .retry_after
"""

from __future__ import annotations

API_DISABLED = "api_disabled"
API_DISABLED_HELP = (
    "api_disabled: Confluence answered 503 without Retry-After, which means its (experimental) "
    "email API is disabled on this site; a site admin can ask Atlassian support to enable it, "
    "then retry the job"
)


class ConfluenceError(Exception):
    """Base of every error the Confluence client raises."""


class UntrustedHost(ConfluenceError):
    """The api_base_url is not under an allowlisted prefix; no request was made."""


class OfflineOperation(ConfluenceError):
    """An offline client was asked for an operation outside ``scopes.OFFLINE``; nothing was sent."""


class UpstreamError(ConfluenceError):
    """A request failed for good; ``reason`` is the short code reported in ``Failure.error``."""

    def __init__(
        self, reason: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason if status is None else f"{reason} (HTTP {status})")
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
