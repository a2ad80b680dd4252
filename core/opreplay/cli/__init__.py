"""The `opreplay` command: a thin layer over the library API.

Each command lives in its own module and registers itself on `main`; the commands parse
arguments, call the library, and render its plain results (rich tables on a terminal,
stable JSON with `--json`). Nothing here holds logic that another front end would need.
"""

from __future__ import annotations

from opreplay.cli import analyze as _analyze  # noqa: F401  (each import registers its commands)
from opreplay.cli import demo as _demo  # noqa: F401
from opreplay.cli import export as _export  # noqa: F401
from opreplay.cli import record as _record  # noqa: F401
from opreplay.cli import replay as _replay  # noqa: F401
from opreplay.cli import sessions as _sessions  # noqa: F401
from opreplay.cli import timeline as _timeline  # noqa: F401
from opreplay.cli.app import main

__all__ = ["main"]
