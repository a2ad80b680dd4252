"""`opreplay demo`: record the example operator against an emulated cluster, no cluster needed.

A first-time user gets, in seconds, two sessions worth opening: "webapp-demo" (404s of first
reconciles, a conflict storm, a slow call, a hot reconcile loop) and "clean" (the steady state).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import click

import opreplay
from opreplay.cli.app import database_option, friendly_errors, main
from opreplay.demo.scenario import Recording, run_demo_scenario


@main.command()
@database_option
@friendly_errors
def demo(database: str) -> None:
    """Record the demo WebApp operator into DATABASE: sessions "clean" and "webapp-demo"."""

    def recorder(session: str) -> AbstractContextManager[Recording]:
        return opreplay.record(database=database, session=session, labels={"demo": "true"})

    for report in run_demo_scenario(recorder=recorder):
        click.echo(
            f"recorded {report.session!r}: {report.reconciles} reconciles on {report.events} watch events,"
            f" {report.conflicts} conflicts retried, {report.failures} failed, in {report.seconds:.1f} s"
        )
    click.echo(f"open it with: opreplay info latest -d {database}")
