"""The recording store: sessions, operations and content-addressed bodies in any peewee database.

SQLite (a file) is the embedded default; a database URL (`postgresql://...`) opens a shared store.
This package is the only one that imports peewee: everything above it speaks `opreplay.model`.
"""

from opreplay.store.schema import SCHEMA_VERSION
from opreplay.store.store import Store

__all__ = ["SCHEMA_VERSION", "Store"]
