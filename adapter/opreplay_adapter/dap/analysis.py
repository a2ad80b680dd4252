"""The session's analysis (hot loops, threads, statistics), made in a child process after the first stop.

Why a child process: `opreplay.analysis.analyze` is one pure-Python pass over every operation,
about 10 s for a million. In a thread of the adapter it would hold the GIL in 5 ms slices, and
every step the user took meanwhile would wait for it; in a child it runs on another core and the
adapter only waits on a pipe (and the child runs at a lower priority, `nice` 10). Launch does not
wait for it either: it reports what the store counts for free, and the analysis follows in the
Debug Console when it is done.

The child is `python -m opreplay_adapter.dap.analysis`: it reads its request as JSON on stdin (so
that a database URL with a password never shows in a process listing) and prints
`Analysis.to_json()` on stdout, or a one-line reason on stderr with exit status 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from opreplay.analysis import DEFAULT_THRESHOLD_MS, analyze
from opreplay.errors import OpreplayError
from opreplay.store import Store

Result = dict[str, Any]


class BackgroundAnalysis:
    """One child process analysing a session; `on_done(result, error)` is called from a waiting thread."""

    def __init__(
        self,
        database: str,
        session_id: str,
        *,
        threshold_ms: float,
        window: int | None,
        on_done: Callable[[Result | None, str | None], None],
    ) -> None:
        self._request = {
            "database": database,
            "session": session_id,
            "threshold_ms": threshold_ms,
            "window": window,
        }
        self._on_done = on_done
        self._process: subprocess.Popen[bytes] | None = None
        self._finished = threading.Event()
        self.result: Result | None = None
        self.error: str | None = None

    def start(self) -> None:
        """Start the child, once; later calls do nothing."""
        if self._process is not None:
            return
        self._process = subprocess.Popen(
            [sys.executable, "-m", "opreplay_adapter.dap.analysis"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._wait, name="dap-analysis", daemon=True).start()

    def _wait(self) -> None:
        assert self._process is not None
        out, err = self._process.communicate(json.dumps(self._request).encode())
        if self._process.returncode == 0:
            try:
                self.result = json.loads(out)
            except ValueError as error:
                self.error = f"the analysis printed something else than JSON ({error})"
        elif self._process.returncode > 0:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            self.error = lines[-1] if lines else f"the analysis failed (status {self._process.returncode})"
        else:
            self.error = "the analysis was stopped"
        self._finished.set()
        self._on_done(self.result, self.error)

    def wait(self, timeout: float) -> bool:
        """True once the analysis has finished (with a result or an error)."""
        return self._finished.wait(timeout)

    def stop(self) -> None:
        """Kill the child if it still runs (the end of the debug session)."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(OSError):
                self._process.kill()


def main() -> int:
    if hasattr(os, "nice"):
        os.nice(10)  # background work: the adapter answering the user comes first
    request = json.loads(sys.stdin.buffer.read())
    threshold = request.get("threshold_ms")
    options: dict[str, Any] = {"threshold_ms": DEFAULT_THRESHOLD_MS if threshold is None else threshold}
    if request.get("window") is not None:
        options["window"] = request["window"]
    try:
        with Store.open(request["database"]) as store:
            session = store.find_session(request["session"])
            analysis = analyze(store, session, **options)
    except OpreplayError as error:
        print(f"cannot analyse session {request['session']}: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(analysis.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
