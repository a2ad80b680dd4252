"""The launch configuration, checked, and the recording it opens.

The `launch` arguments are the user's `launch.json`, so a mistake in them is reported to the user
in words ("launch: `database` is required: the path or URL of a recording"), never as a protocol
error. Relative paths are taken against `cwd` when the configuration gives one (VS Code passes the
workspace folder there), else against the adapter's working directory; `~` is expanded, as a shell
would. A database URL (`postgresql://...`) is passed through untouched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opreplay.analysis import DEFAULT_THRESHOLD_MS
from opreplay.errors import OpreplayError
from opreplay.replay import ReplayEngine
from opreplay_adapter.dap.dispatch import CantHandle
from opreplay_adapter.dap.pages import default_folder
from opreplay_adapter.dap.protocol import excerpt


@dataclass(frozen=True)
class LaunchOptions:
    database: str
    session: str = "latest"
    stop_on_entry: bool = True
    slow_threshold_ms: float = DEFAULT_THRESHOLD_MS
    loop_window: int | None = None
    timeline_dir: Path | None = None

    @classmethod
    def parse(cls, arguments: dict[str, Any]) -> LaunchOptions:
        cwd = _text(arguments, "cwd")
        base = Path(os.path.expanduser(cwd)) if cwd else Path.cwd()
        database = _text(arguments, "database")
        if not database:
            raise CantHandle("launch: `database` is required: the path or URL of an opreplay recording")
        if "://" not in database or database.startswith("sqlite"):
            database = str(_path(base, database.removeprefix("sqlite:///"), "database"))
        session = _text(arguments, "session") or "latest"
        stop_on_entry = arguments.get("stopOnEntry", True)
        if not isinstance(stop_on_entry, bool):
            raise CantHandle("launch: `stopOnEntry` must be true or false")
        threshold = arguments.get("slowThresholdMs", DEFAULT_THRESHOLD_MS)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold >= 0:
            raise CantHandle("launch: `slowThresholdMs` must be a number of milliseconds, 0 or more")
        window = arguments.get("loopWindow")
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 2):
            raise CantHandle("launch: `loopWindow` must be a number of operations, at least 2")
        timeline_dir = _text(arguments, "timelineDir")
        return cls(
            database=database,
            session=session,
            stop_on_entry=stop_on_entry,
            slow_threshold_ms=float(threshold),
            loop_window=window,
            timeline_dir=_path(base, timeline_dir, "timelineDir") if timeline_dir else None,
        )

    def open(self) -> ReplayEngine:
        """The engine on the configured session; the reason in words when it cannot be opened."""
        # checkpoints built on a first jump deep into a long session are kept in the recording
        # (a cache; memory only when the file cannot be written), so the next launch starts warm
        options: dict[str, Any] = {"slow_threshold_ms": self.slow_threshold_ms, "save_checkpoints": True}
        if self.loop_window is not None:
            options["loop_window"] = self.loop_window
        try:
            return ReplayEngine.open(self.database, self.session, **options)
        except OpreplayError as error:
            raise CantHandle(f"cannot open session '{self.session}': {error}") from None
        except OSError as error:  # what the store's checks let through, e.g. a name too long
            reason = f"{excerpt(self.database)}: {error.strerror or error}"
            raise CantHandle(f"cannot open session '{self.session}': {reason}") from None

    def timeline_folder(self, session_id: str) -> Path:
        return self.timeline_dir or default_folder(self.database, session_id)


def _text(arguments: dict[str, Any], name: str) -> str | None:
    value = arguments.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CantHandle(f"launch: `{name}` must be a string")
    return value.strip()


def _path(base: Path, text: str, name: str) -> Path:
    """`text` as an absolute path; a name the file system cannot take is the user's to fix."""
    try:
        text.encode("utf-8")
        return (base / os.path.expanduser(text)).resolve()
    except (OSError, ValueError) as error:  # too long, NUL, lone surrogates (UnicodeEncodeError)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise CantHandle(f"launch: `{name}` is not a usable path ({excerpt(reason, 80)})") from None
