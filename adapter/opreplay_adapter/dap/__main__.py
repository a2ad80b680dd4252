"""`opreplay-dap` (or `python -m opreplay_adapter.dap`): the debug adapter VS Code starts.

stdout belongs to the protocol: nothing else is ever written there, not even `--help` (it goes to
stderr). stderr gets at most one line per problem; tracebacks go to `--log-file` only. Exit status:
0 when the client ended the session (disconnect, terminate, closed input), 1 when the adapter had
to close it (the client broke the protocol, or an internal error), 2 for a bad command line or a
missing DAP schema.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Sequence

from opreplay_adapter.dap.dispatch import Ending
from opreplay_adapter.dap.protocol import MessageLog, excerpt
from opreplay_adapter.dap.schema import ArgumentsChecker, SchemaError
from opreplay_adapter.dap.transport import listen, serve_stdio, serve_tcp

PROG = "opreplay-dap"


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Debug Adapter Protocol server for opreplay recordings (stdio by default)."
    )
    parser.add_argument(
        "--port",
        type=_port,
        metavar="N",
        help="serve one client at a time on 127.0.0.1:N instead of stdio (0: a free port, printed on stderr)",
    )
    parser.add_argument(
        "--log-file",
        metavar="F",
        help="append every message in and out, and the adapter's errors, to F as JSON lines",
    )
    return parser


def _say(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def _report(ending: Ending) -> None:
    if ending.failed:
        _say(f"closed a connection: {ending.reason}")


def main(argv: Sequence[str] | None = None) -> int:
    with contextlib.redirect_stdout(sys.stderr):
        try:
            args = _parser().parse_args(argv)
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else 2
    log: MessageLog | None = None
    try:
        ArgumentsChecker.default()
        log = MessageLog.open(args.log_file) if args.log_file else None
    except SchemaError as error:
        _say(str(error))
        return 2
    except OSError as error:
        _say(f"cannot open the log file {args.log_file}: {error.strerror or error}")
        return 2
    if log is not None:
        log.note(
            "info",
            f"{PROG} started: pid {os.getpid()}, "
            + (f"port {args.port}" if args.port is not None else "stdio"),
        )
    try:
        if args.port is None:
            ending = serve_stdio(log=log)
            if ending.failed:
                _say(f"closing the connection: {ending.reason}")
            return 1 if ending.failed else 0
        try:
            listener = listen(args.port)
        except OSError as error:
            _say(f"cannot listen on 127.0.0.1:{args.port}: {error.strerror or error}")
            return 2
        _say(f"listening on 127.0.0.1:{listener.getsockname()[1]}")
        with listener:
            serve_tcp(listener, log=log, on_ended=_report)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if log is not None:
            log.note("error", traceback.format_exc())
        _say(
            f"internal error: {type(error).__name__}: {excerpt(str(error), 200)}"
            + (" (traceback in the log file)" if log else "")
        )
        return 1
    finally:
        if log is not None:
            log.close()


if __name__ == "__main__":
    sys.exit(main())
