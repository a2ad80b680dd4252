"""The tables, as peewee models built per database.

Models are created by `bind_models(database)` rather than declared at module level, so that
several stores (a SQLite file and a PostgreSQL server, or two files in one test) can be open in
one process without rebinding shared classes under each other's feet.

Layout, and why:
- `objects` interns the (apiVersion, resource, namespace, name) of every object an operation
  touched: operations carry a small integer instead of four strings, and a selector such as
  `Deployment/default/*` resolves to a handful of ids that the (session, object) index answers.
- `bodies` are content-addressed by a 16-byte SHA-256 digest: an object state that recurs (a GET
  of an unchanged object, the watch event that echoes an update) is stored once; a new version of an
  object is stored as a zstd delta against the previous version (`base`), a few dozen bytes.
- `checkpoints` hold the cluster state every K operations, so the state at any seq is one
  checkpoint plus at most K operations away.
"""

from __future__ import annotations

from types import SimpleNamespace

import peewee

SCHEMA_VERSION = 1
APPLICATION = "opreplay"
SQLITE_APPLICATION_ID = 0x6F707270  # "oprp": lets `file` and sqlite tools recognise the format


def bind_models(database: peewee.Database) -> SimpleNamespace:
    """Model classes bound to `database`: meta, sessions, objects, operations, bodies, checkpoints,
    reconciles."""

    sqlite = isinstance(database, peewee.SqliteDatabase)

    class Base(peewee.Model):
        class Meta:
            legacy_table_names = False

    Base._meta.set_database(database)

    class Meta(Base):
        key = peewee.TextField(primary_key=True)
        value = peewee.TextField()

        class Meta:
            table_name = "opreplay_meta"
            without_rowid = sqlite

    class Session(Base):
        pk = peewee.AutoField()
        id = peewee.TextField(unique=True)
        name = peewee.TextField(null=True, index=True)
        started_at = peewee.DoubleField()
        ended_at = peewee.DoubleField(null=True)
        host = peewee.TextField()
        pid = peewee.IntegerField()
        command = peewee.TextField()
        kube_context = peewee.TextField(null=True)
        labels = peewee.TextField(default="{}")
        operations = peewee.IntegerField(default=0)
        errors = peewee.IntegerField(default=0)
        dropped = peewee.IntegerField(default=0)

        class Meta:
            table_name = "sessions"

    class Object(Base):
        id = peewee.AutoField()
        api_version = peewee.TextField()
        resource = peewee.TextField()
        kind = peewee.TextField()
        namespace = peewee.TextField()
        name = peewee.TextField()

        class Meta:
            table_name = "objects"
            indexes = (
                (("api_version", "resource", "namespace", "name"), True),
                (("kind", "namespace", "name"), False),
            )

    class Operation(Base):
        session = peewee.IntegerField()
        seq = peewee.IntegerField()
        ts = peewee.DoubleField()
        duration_us = peewee.IntegerField()
        thread = peewee.TextField()
        verb = peewee.TextField()
        object = peewee.IntegerField()
        subresource = peewee.TextField(null=True)
        status = peewee.IntegerField()
        reason = peewee.TextField(null=True)
        message = peewee.TextField(null=True)
        resource_version = peewee.TextField(null=True)
        reconcile = peewee.IntegerField(null=True)
        watch = peewee.IntegerField(null=True)
        event = peewee.TextField(null=True)
        request = peewee.BlobField(null=True)
        response = peewee.BlobField(null=True)

        class Meta:
            table_name = "operations"
            without_rowid = sqlite
            primary_key = peewee.CompositeKey("session", "seq")
            indexes = (
                (("session", "object", "seq"), False),
                (("session", "status", "seq"), False),
                (("session", "verb", "seq"), False),
            )

    class Body(Base):
        # A rowid table on purpose: WITHOUT ROWID stores a ~1 KB blob inline in the key's b-tree and
        # spills it to a mostly empty overflow page; here bodies pack densely into table pages.
        digest = peewee.BlobField(primary_key=True)
        format = peewee.IntegerField()
        codec = peewee.IntegerField()
        base = peewee.BlobField(null=True)
        size = peewee.IntegerField()
        data = peewee.BlobField()

        class Meta:
            table_name = "bodies"

    class Checkpoint(Base):
        session = peewee.IntegerField()
        seq = peewee.IntegerField()
        data = peewee.BlobField()

        class Meta:
            table_name = "checkpoints"
            without_rowid = sqlite
            primary_key = peewee.CompositeKey("session", "seq")

    class Reconcile(Base):
        # added after schema 1 without a version bump: readers find it missing in older files
        session = peewee.IntegerField()
        id = peewee.IntegerField()
        kind = peewee.TextField()
        namespace = peewee.TextField()
        name = peewee.TextField()
        started_at = peewee.DoubleField()

        class Meta:
            table_name = "reconciles"
            without_rowid = sqlite
            primary_key = peewee.CompositeKey("session", "id")

    return SimpleNamespace(
        Meta=Meta,
        Session=Session,
        Object=Object,
        Operation=Operation,
        Body=Body,
        Checkpoint=Checkpoint,
        Reconcile=Reconcile,
        all=[Meta, Session, Object, Operation, Body, Checkpoint, Reconcile],
    )
