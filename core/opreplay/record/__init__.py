"""Recording: every Kubernetes API call the `kubernetes` client makes, into a store session.

    import opreplay

    with opreplay.record("recordings.db", "my-operator", labels={"env": "dev"}) as rec:
        run_operator()                      # typed APIs, CustomObjectsApi, dynamic client, watches
        with rec.reconcile("WebApp", "default", "shop"):
            reconcile_shop()                # these operations share a reconcile id

Or without touching the code: `opreplay record -d recordings.db -- python my_operator.py`.

How it works (details in the modules):
- `capture`: one hook on the urllib3 pool manager of each kubernetes `RESTClientObject`, the
  point every client layout goes through. The operator's thread takes two timestamps and queues
  references to the raw bytes as the caller reads them: no parsing, no I/O, a few microseconds.
- `writer`: a thread that turns the queue into operations (verb, object, kind, resourceVersion,
  Status errors, LIST items, one operation per watch event, redaction, size limits) and appends
  them in batches, one transaction per batch, at least every `flush_interval`.
- `recorder`: lifecycle, reconcile markers, and flushing on stop, exit and SIGTERM.

Overflow policy. The queue holds at most `queue_size` calls. The recorder must never slow the
operator down, so by default (`overflow="drop"`) a call that finds the queue full is not recorded:
it is counted, and a `gap` operation ("N operations dropped: recorder queue full") is written at
the point of loss and added to the session's `dropped` counter. Nothing is lost silently; a replay
shows where the recording has a hole. `overflow="block"` makes the calling thread wait for room
instead: a complete recording, at the price of the operator's speed when the store cannot keep up.

`opreplay.record` is also the function the `opreplay` package exports, so import this package's
modules with `from opreplay.record.writer import Assembler` (`import opreplay.record.writer as w`
would find the function first).

Secrets are redacted by default (`redact=False` turns it off): see `redact`. Headers are never
recorded, so neither are bearer tokens; client certificates and keys never pass through the hook.
A body over `max_body_bytes` is stored as `{"opreplay.truncated": true, "size": N, "prefix": ...}`;
a LIST is split into its items first, so the limit applies to each item.
"""

from __future__ import annotations

import os
from typing import Any

from opreplay.record.recorder import Overflow, Reconcile, Recorder
from opreplay.store import Store

__all__ = ["Reconcile", "Recorder", "record"]


def record(
    database: str | os.PathLike[str] | Store = "recordings.db",
    session: str | None = None,
    *,
    api_client: Any = None,
    redact: bool = True,
    labels: dict[str, str] | None = None,
    flush_interval: float = 0.2,
    queue_size: int = 100_000,
    batch_size: int = 1000,
    max_body_bytes: int = 1 << 20,
    overflow: Overflow = "drop",
) -> Recorder:
    """A recorder of the kubernetes client, not started yet: use it with `with`, or `start()`/`stop()`.

    `database` is a SQLite file (created if needed), a database URL or an open writable Store;
    `session` names the session (None: unnamed). Without `api_client` every ApiClient in the
    process is recorded; with one, only that one.
    """
    return Recorder(
        database,
        session,
        api_client=api_client,
        redact=redact,
        labels=labels,
        flush_interval=flush_interval,
        queue_size=queue_size,
        batch_size=batch_size,
        max_body_bytes=max_body_bytes,
        overflow=overflow,
    )
