"""opreplay: record every Kubernetes API call an operator makes, then replay and debug it.

`opreplay.record(...)` records the official kubernetes client in this process; `opreplay.Store`
opens a recording. The replay engine, analysis and front ends build on these.
"""

from opreplay.errors import OpreplayError, SessionNotFound, StoreError
from opreplay.record import Recorder, record
from opreplay.store import Store

__all__ = ["OpreplayError", "Recorder", "SessionNotFound", "Store", "StoreError", "record"]
