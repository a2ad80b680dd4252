"""`opreplay record -- python my_operator.py`: record a Python program without changing it.

The program runs as a child process whose environment starts a recorder at interpreter start
(see `opreplay.record.boot`); this command only prepares that environment, waits, and exits with
the child's status, so it can stand in for the program in scripts and process managers. SIGTERM
and SIGINT are passed on to the child, which flushes its recording before it goes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

import click

from opreplay.cli.app import database_option, friendly_errors, main
from opreplay.record.boot import environment


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = text
    return labels


@main.command(context_settings={"ignore_unknown_options": True})
@database_option
@click.option("--session", "session", default=None, help="Name of the recorded session.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A session label (repeatable).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@friendly_errors
def record(database: str, session: str | None, labels: tuple[str, ...], command: tuple[str, ...]) -> None:
    """Run COMMAND (a Python program) and record its Kubernetes API calls into DATABASE.

    \b
    Example:  opreplay record -d recordings.db --session dev -- python my_operator.py --verbose
    Exits with the program's exit status.
    """
    env = environment(dict(os.environ), database=database, session=session, labels=_labels(labels))
    try:
        child = subprocess.Popen(list(command), env=env)
    except OSError as error:
        raise click.ClickException(f"cannot run {command[0]!r}: {error.strerror or error}") from None

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        status = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    # A child killed by a signal: exit as a shell would report it.
    sys.exit(128 - status if status < 0 else status)
