"""Atlassian account ids: the one length limit the input checks and the schema share, and their form.

``ACCOUNT_ID_MAX`` (128) is Atlassian's documented maximum length of an account id (docs/platform.md,
"Account ids"); every column that holds one is ``String(ACCOUNT_ID_MAX)`` (``store/tables.py``) and every
input that takes one refuses a longer value as bad input, so no database ever sees one.

``is_account_id`` is deliberately liberal: Atlassian documents no format beyond examples, and the
forms seen are ``557058:<uuid>`` (a number, a colon, a uuid), 24 hexadecimal digits (older
accounts), ``qm:<uuid>:<uuid>`` (app and customer accounts), with letters outside hex in the
documentation's own examples. Accepted: 1 to 128 ASCII letters, digits, ``:``, ``-``, ``_`` and
``.``. Anything else (spaces, ``@``, ``/``, other characters) names no account: ``lookupUsers``
answers it ``notFound`` without sending or caching it.
"""

from __future__ import annotations

import re

ACCOUNT_ID_MAX = 128
_FORM = re.compile(rf"[A-Za-z0-9:_.\-]{{1,{ACCOUNT_ID_MAX}}}")


def is_account_id(value: str) -> bool:
    """Whether ``value`` has the form of an Atlassian account id (see the module docstring)."""
    return _FORM.fullmatch(value) is not None
