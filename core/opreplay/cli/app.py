"""The click group, the shared `-d/--database` option and the one place errors become messages."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import orjson

from opreplay.errors import OpreplayError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DATABASE = "recordings.db"


def database_option(func: F) -> F:
    """`-d/--database`: defaults to $OPREPLAY_DATABASE, else recordings.db."""
    option = click.option(
        "-d",
        "--database",
        default=lambda: os.environ.get("OPREPLAY_DATABASE", DEFAULT_DATABASE),
        show_default="$OPREPLAY_DATABASE or recordings.db",
        help="Recording database: a SQLite file or a database URL (postgresql://...).",
    )
    return option(func)


def friendly_errors(func: F) -> F:
    """Turn the library's errors into one line on stderr and exit status 2: never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OpreplayError as error:
            click.echo(f"opreplay: error: {error}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def echo_json(value: Any) -> None:
    """Print JSON for tools: strict (a damaged recording's NaN or infinite time is null, not the
    `NaN` that only Python reads back), indented by two, status codes as string keys."""
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opreplay")
def main() -> None:
    """Record the Kubernetes API calls of an operator; replay, debug and analyse them."""
