"""Database errors as the store reports them: one `StoreError` line that names the database.

Drivers write several lines (PostgreSQL adds `DETAIL:` and hints); the store and its read queries
(`replay_queries`) both go through `guard`, so every message is one line whichever method failed.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import peewee

from opreplay.errors import StoreError

P = ParamSpec("P")
R = TypeVar("R")


def guard(method: Callable[P, R]) -> Callable[P, R]:
    """A store method whose database errors become `StoreError`s naming the store's `label`."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (peewee.DatabaseError, sqlite3.DatabaseError) as error:
            label = getattr(args[0], "label", "database")
            raise StoreError(f"{label}: {describe(error)}") from None

    return wrapper


def describe(error: BaseException) -> str:
    """A database error in one line; a damaged SQLite file says so."""
    text = " ".join(str(error).split()) or type(error).__name__
    if "malformed" in text or "not a database" in text:
        return f"is corrupted ({text})"
    return text
