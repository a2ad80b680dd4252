"""The library's error types: each carries a one-line message a person can act on.

Front ends (CLI, DAP, LSP) show `str(error)` as it is; anything that is not an
`OpreplayError` is a bug in opreplay, not bad input.
"""

from __future__ import annotations


class OpreplayError(Exception):
    """Base of every error that is the user's input or environment, not a bug."""


class StoreError(OpreplayError):
    """A database that cannot be opened, read or written as an opreplay store."""


class SessionNotFound(OpreplayError):
    """A session id or name that the database does not hold."""
