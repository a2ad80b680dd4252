"""Timeline pages as the debugger's source files, written lazily.

Why real files: VS Code opens a path as a document the user can keep open, search and set
breakpoints in, and the language server annotates it; a `sourceReference` would give a read-only
buffer that lives only as long as the session. Why lazily: a page of 5,000 operations takes about
0.1 s to render and a million-operation session has 200 of them, so launch writes none and a
stop writes the page it shows. Each page is written once per debug session (atomically), so a
page left by an earlier session is refreshed before it is shown again.

Where: in `timelineDir` when the launch configuration gives one, else next to the database in
`.opreplay/timeline/<session>/` (a database URL has no folder: the temporary folder is used). When
that folder cannot be written, the pages go to the temporary folder and the user is told once.

Line numbers here are 0-based, as in `opreplay.timeline`; the handlers convert to the client's.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opreplay.model import SessionInfo
from opreplay.store import Store
from opreplay.timeline import (
    DEFAULT_PAGE_SIZE,
    TimelineError,
    line_of,
    page_count,
    page_filename,
    page_of,
    parse_filename,
    render_page,
    seq_at,
)

__all__ = ["NotAPage", "TimelinePages", "default_folder"]


class NotAPage(Exception):
    """A source that is not a timeline page of the session being debugged; the message says why."""


def default_folder(database: str, session_id: str) -> Path:
    """`.opreplay/timeline/<session>/` next to a database file; under the temporary folder for a URL."""
    if "://" in database and not database.startswith("sqlite"):
        return Path(tempfile.gettempdir()) / "opreplay-timeline" / session_id
    path = Path(database.removeprefix("sqlite:///"))
    return path.parent / ".opreplay" / "timeline" / session_id


class TimelinePages:
    """The pages of one session: which is written, where, and line <-> seq."""

    def __init__(
        self,
        store: Store,
        session: SessionInfo,
        total: int,
        folder: Path,
        *,
        warn: Callable[[str], None],
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        # The counters of a session still being recorded may lag behind its operations.
        self._session = dataclasses.replace(session, operations=total)
        self._store = store
        self._total = total
        self.folder = folder
        self._warn = warn
        self.page_size = page_size
        self._written: dict[int, Path] = {}

    # -- seq <-> page and line ----------------------------------------------------------------

    def page_of(self, seq: int) -> int:
        return page_of(seq, self.page_size)

    def line_of(self, seq: int) -> int:
        return line_of(seq, self.page_size)

    def seq_at(self, page: int, line: int) -> int | None:
        """The seq on 0-based `line` of `page`, None on a header line or past the end."""
        return seq_at(page, line, page_size=self.page_size, total=self._total)

    def operation_lines(self, page: int, first: int, last: int) -> range:
        """The 0-based lines in first..last of `page` that show an operation."""
        top = (page - 1) * self.page_size + 1
        bottom = min(self._total, page * self.page_size)
        if bottom < top:
            return range(0)
        return range(max(first, self.line_of(top)), min(last, self.line_of(bottom)) + 1)

    def locate(self, source: dict[str, Any]) -> int:
        """The page a DAP `source` shows; `NotAPage` with the reason when it is no page of this session."""
        path = source.get("path")
        if not isinstance(path, str) or not path:
            raise NotAPage("the source has no path: breakpoints go on timeline documents (*.optrace)")
        parsed = parse_filename(path)
        if parsed is None:
            raise NotAPage(
                f"{os.path.basename(path)} is not a timeline page: breakpoints go on *.optrace lines"
            )
        session_id, page = parsed
        if session_id != self._session.id:
            raise NotAPage(f"{os.path.basename(path)} shows session {session_id}, not {self._session.id}")
        if not 1 <= page <= page_count(self._total, self.page_size):
            raise NotAPage(f"{os.path.basename(path)}: session {session_id} has no page {page}")
        return page

    # -- files --------------------------------------------------------------------------------

    def source(self, seq: int) -> dict[str, Any]:
        """The DAP source of the page that shows `seq`, written first if this session has not yet."""
        path = self._written.get(self.page_of(seq)) or self._write(self.page_of(seq))
        return {"name": path.name, "path": str(path)}

    def text(self, page: int) -> str:
        return render_page(self._store, self._session, page, page_size=self.page_size)

    def written(self) -> list[dict[str, Any]]:
        return [{"name": path.name, "path": str(path)} for _, path in sorted(self._written.items())]

    def _write(self, page: int) -> Path:
        text = self.text(page)
        try:
            path = self._write_in(self.folder, page, text)
        except OSError as error:
            reason = error.strerror or str(error)
            fallback = Path(tempfile.gettempdir()) / "opreplay-timeline" / self._session.id
            if self.folder == fallback:
                raise TimelineError(f"cannot write timeline pages to {self.folder}: {reason}") from None
            self._warn(
                f"opreplay: cannot write timeline pages to {self.folder} ({reason}); writing them to"
                f" {fallback} instead (set timelineDir in the launch configuration to choose)\n"
            )
            self.folder = fallback
            return self._write(page)
        self._written[page] = path
        return path

    def _write_in(self, folder: Path, page: int, text: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / page_filename(self._session.id, page)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
                file.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path
