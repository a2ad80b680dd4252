"""Database errors as the store reports them: one `StoreError` line that names the database.

Drivers write several lines (PostgreSQL adds `DETAIL:` and hints); the store and its read queries
(`replay_queries`) both go through `guard`, so every message is one line whichever method failed.

A damaged file does not always fail inside SQLite: a flipped byte can leave a text column that is
not UTF-8 (the driver raises `UnicodeDecodeError` while it decodes the row), a row that refers to
another row which is gone (the store raises `Damaged`), or a value of another type than its column
(SQLite keeps a type per value: a seq can come back as a blob, and `int()` of it fails). All are
reported as corruption. The last one only for a read-only store: a writer's own values come from
its caller, and a wrong type there is the caller's bug, not the file's.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import peewee

from opreplay.errors import StoreError

P = ParamSpec("P")
R = TypeVar("R")


class Damaged(Exception):
    """What the store read contradicts itself (a row refers to one that is not there)."""


_UNDECODABLE = re.compile(r"Could not decode to UTF-8 column ('[^']{0,64}')")
"""How the sqlite3 module reports a text value that is not UTF-8 (the value follows: not shown)."""

DAMAGE = (peewee.DatabaseError, sqlite3.DatabaseError, UnicodeDecodeError, Damaged)
"""What reading a database can raise when the database, not the code, is at fault."""


def guard(method: Callable[P, R]) -> Callable[P, R]:
    """A store method whose database errors become `StoreError`s naming the store's `label`."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (*DAMAGE, ValueError, TypeError) as error:
            store = args[0]
            if not isinstance(error, DAMAGE) and getattr(store, "writable", True):
                raise  # a writer's own value: the caller's bug
            raise StoreError(f"{getattr(store, 'label', 'database')}: {describe(error)}") from None

    return wrapper


def describe(error: BaseException) -> str:
    """A database error in one line; a damaged SQLite file says so."""
    text = " ".join(str(error).split()) or type(error).__name__
    undecodable = _UNDECODABLE.match(text)
    if isinstance(error, UnicodeDecodeError) or undecodable is not None:
        column = f"column {undecodable[1]}" if undecodable is not None else "a text column"
        return f"is corrupted ({column} holds bytes that are not UTF-8)"
    if isinstance(error, Damaged) or "malformed" in text or "not a database" in text:
        return f"is corrupted ({text})"
    if isinstance(error, (ValueError, TypeError)):
        return f"is corrupted (a value that cannot be read: {text[:100]})"
    return text
