"""Recording a program that does not know about opreplay: `opreplay record -- python op.py`.

The command runs the program with `_boot/` first on PYTHONPATH. Python imports the
`sitecustomize` module it finds there at interpreter start, before the program's first line;
that module calls `start_from_environment()`, which starts a recorder of every kubernetes client in
the process (stopped and flushed at exit, like any recorder) and then imports whatever
`sitecustomize` it shadowed, so a virtualenv's or a distribution's still runs.

Python processes the program starts inherit the environment and are recorded too, each in a
session of its own. A process forked without exec (multiprocessing's fork) does not record: the
writer thread does not survive a fork (see `recorder`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from opreplay.record.recorder import Recorder

DATABASE = "OPREPLAY_RECORD_DATABASE"
SESSION = "OPREPLAY_RECORD_SESSION"
LABELS = "OPREPLAY_RECORD_LABELS"
FALLBACK_PATH = "OPREPLAY_RECORD_FALLBACK_PATH"
BOOT_DIR = Path(__file__).resolve().parent / "_boot"
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the `opreplay` package


def environment(
    base: dict[str, str], *, database: str, session: str | None, labels: dict[str, str]
) -> dict[str, str]:
    """The environment that makes a Python child process record itself into `database`."""
    env = dict(base)
    env[DATABASE] = os.path.abspath(database) if "://" not in database else database
    env[LABELS] = json.dumps(labels, sort_keys=True)
    if session is not None:
        env[SESSION] = session
    else:
        env.pop(SESSION, None)
    # Only the boot folder goes first: the folder that holds opreplay (site-packages, often) is a
    # fallback the boot appends when the child cannot import opreplay, so that it never shadows the
    # program's own packages (another kubernetes version, say).
    env[FALLBACK_PATH] = str(_PACKAGE_ROOT)
    inherited = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
    env["PYTHONPATH"] = os.pathsep.join([str(BOOT_DIR), *inherited])
    return env


def start_from_environment() -> Recorder | None:
    """Start recording as the environment says; None when it says nothing (or is already recording)."""
    database = os.environ.get(DATABASE)
    if not database or _started:
        return None
    labels = json.loads(os.environ.get(LABELS) or "{}")
    recorder = Recorder(database, os.environ.get(SESSION), labels=labels)
    recorder.start()
    _started.append(recorder)
    return recorder


_started: list[Recorder] = []
