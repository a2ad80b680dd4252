"""`opreplay replay`: a session's operations as a table, or a step debugger in the terminal (`-i`).

Without `-i` the operations are printed one line each, with the timeline's columns (seq, time,
verb, object, status and reason, duration, reconcile and watch tags, thread): styled on a
terminal, plain aligned text when piped (exactly `timeline.format_line`, so `grep`, `awk` and
`cut` work on it). `--from/--to` bound the range, `--filter` keeps the operations where an
expression of the condition language is true, `--limit` stops after N lines. Rows are read in
batches through the replay engine's window, and a filter is evaluated by the engine's own scan one
window at a time (see `matching`), so memory stays flat however long the session.

With `-i` the session becomes a small gdb-like debugger: a prompt showing where the cursor is
(`[op 12/256] `), one-letter commands to step, jump, search, look at the change and the object,
and statistics. It reads commands with plain `input()` (readline editing and history on a
terminal), so it works in any terminal and can be driven from a pipe; piped, each command is
echoed after its prompt so that a transcript reads like a session. Every move goes through the
`ReplayEngine`; this module only parses commands and renders the engine's answers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import click
import orjson
from rich.console import Console
from rich.text import Text

from opreplay import analysis
from opreplay.analysis import Analysis
from opreplay.cli.app import database_option, friendly_errors, main
from opreplay.conditions import Condition, ConditionError, compile_condition
from opreplay.errors import OpreplayError
from opreplay.model import WRITE_VERBS, Operation
from opreplay.progress import is_terminal, progress_bar
from opreplay.replay import (
    ERROR_FILTERS,
    ConditionBreakpoint,
    ErrorBreakpoint,
    ReplayEngine,
    SeqBreakpoint,
    Stop,
)
from opreplay.timeline import (
    DURATION_WIDTH,
    SEQ_WIDTH,
    VERB_WIDTH,
    Widths,
    format_duration,
    format_line,
    format_time,
    status_text,
    target_text,
    verb_label,
)

BATCH = 1000
"""Operations read (and printed) at a time by the table."""
SLOW_MS = analysis.DEFAULT_THRESHOLD_MS
"""A call at least this slow has its duration highlighted."""
SCAN_WINDOW = 8192
"""Operations a filtered table asks the engine to scan at a time (bounds the matches held)."""
_TABLE_GROUP = "opreplay-cli-table"
PROGRESS_DELAY_S = 0.4
"""Work that finishes sooner than this shows no progress bar (no flicker on small sessions)."""
VALUE_WIDTH = 160
"""Values in a diff longer than this are cut (the whole object is one `o` away)."""


@main.command("replay")
@click.argument("session", default="latest")
@database_option
@click.option(
    "-i",
    "--interactive",
    is_flag=True,
    help="Step through the session in an interactive debugger (type h at its prompt for the commands).",
)
@click.option(
    "--from",
    "first",
    type=click.IntRange(min=1),
    metavar="SEQ",
    help="Start at operation SEQ (default: the first). With -i: the operation to open at.",
)
@click.option("--to", "last", type=click.IntRange(min=1), metavar="SEQ", help="Stop after operation SEQ.")
@click.option(
    "--filter",
    "expression",
    metavar="EXPR",
    help="Only operations where EXPR is true, e.g. 'status == 409' or "
    '\'kind == "Deployment" and verb in ("update", "patch")\' (the condition language).',
)
@click.option("--limit", type=click.IntRange(min=0), metavar="N", help="Print at most N operations.")
@friendly_errors
def replay_command(
    session: str,
    database: str,
    interactive: bool,
    first: int | None,
    last: int | None,
    expression: str | None,
    limit: int | None,
) -> None:
    """Replay SESSION (an id, a name or `latest`): print its operations, or debug it with -i.

    \b
    Examples:
      opreplay replay webapp-demo                          every operation, one line each
      opreplay replay webapp-demo --filter 'status >= 400'  the errors
      opreplay replay webapp-demo --from 100 --limit 20    20 operations from seq 100
      opreplay replay webapp-demo -i                       step, search, diff, inspect objects
    """
    if interactive:
        extra = [
            name
            for name, value in (("--to", last), ("--filter", expression), ("--limit", limit))
            if value is not None
        ]
        if extra:
            raise click.UsageError(f"{', '.join(extra)}: for the table only, not with -i")
    if first is not None and last is not None and last < first:
        raise click.BadParameter(f"--to {last} is before --from {first}", param_hint="--to")
    condition: Condition | None = None
    if expression is not None:
        try:
            condition = compile_condition(expression)
        except ConditionError as error:  # one line, exit 2 (friendly_errors)
            raise ConditionError(f"--filter: {error}", error.column) from None
    with _delayed_status(f"opening session {session}"):
        engine = ReplayEngine.open(database, session, save_checkpoints=interactive)
    with engine:
        if interactive:
            Debugger(engine, database=database).run(start=first)
        else:
            print_table(engine, first=first or 1, last=last, condition=condition, limit=limit)


# -- the table -------------------------------------------------------------------------------------


def status_style(op: Operation) -> str:
    """Rich style of an operation's status: red for errors, cyan for watch events, green for success."""
    if op.verb == "watch-event":
        return "cyan"
    if op.verb == "gap":
        return "magenta"
    if op.is_error:
        return "bold red"
    return "green"


def _verb_style(op: Operation) -> str:
    if op.verb in WRITE_VERBS:
        return "bold yellow"
    if op.verb == "watch-event":
        return "cyan"
    return "bold"


def styled_line(op: Operation, widths: Widths) -> Text:
    """`format_line` with colours: the same columns and the same text, styled for a terminal."""
    line = Text()
    line.append(f"{op.seq:>{SEQ_WIDTH}}", "bold")
    line.append(f"  {format_time(op.ts)}  ", "dim")
    line.append(f"{verb_label(op.verb):<{VERB_WIDTH}}", _verb_style(op))
    line.append(f"  {target_text(op):<{widths.target}}  ")
    line.append(f"{status_text(op):<{widths.status}}", status_style(op))
    duration = f"  {format_duration(op.duration_us):>{DURATION_WIDTH}}"
    line.append(duration, "yellow" if op.duration_ms >= SLOW_MS and op.verb != "watch" else "")
    tags = "  "
    if op.reconcile is not None:
        tags += f"[reconcile {op.reconcile}] "
    if op.watch is not None:
        tags += f"[watch {op.watch}] "
    line.append(f"{tags}thread={op.thread}", "dim")
    return line


def _legend(widths: Widths) -> str:
    return (
        f"{'seq':>{SEQ_WIDTH}}  {'time (UTC)':<12}  {'verb':<{VERB_WIDTH}}  {'object':<{widths.target}}  "
        f"{'status':<{widths.status}}  {'duration':>{DURATION_WIDTH}}  tags thread"
    )


def _grow(widths: Widths | None, ops: list[Operation]) -> Widths:
    """Column widths that only grow: set by the first batch, widened if a later one needs it."""
    found = Widths.of(ops)
    if widths is None:
        return found
    return Widths(max(widths.target, found.target), max(widths.status, found.status))


def matching(
    engine: ReplayEngine, first: int, last: int, condition: Condition | None
) -> Iterator[list[Operation]]:
    """The operations in [first, last] where `condition` holds (all of them without one), in batches.

    With a condition the engine does the scan, window by window, so that expressions reading
    `obj`, `old` or `state` are evaluated on the state it folds as it goes (rather than looked
    up operation by operation): a logpoint with the condition logs the seq of every match and a
    seq breakpoint ends the window. Memory is bounded by the window, not by the matches.
    """
    if condition is None:
        for start in range(first, last + 1, BATCH):
            yield engine.operations(start, min(last + 1, start + BATCH))
        return
    if first > last:
        return
    engine.goto(first)  # a run starts after the cursor: the first operation is tested here
    if condition.test(engine.context(first)):
        yield [engine.operation(first)]
    logpoint = ConditionBreakpoint(condition.source, log_message="{seq}")
    try:
        while engine.position < last:
            end = min(last, engine.position + SCAN_WINDOW)
            stopper = [SeqBreakpoint(end)] if end < engine.total else []
            engine.set_breakpoints([logpoint, *stopper], group=_TABLE_GROUP)
            stop = engine.run()
            seqs = [log.seq for log in stop.logs if log.seq <= end]
            if seqs:
                yield [engine.operation(seq) for seq in seqs]
            if stop.seq < end or stop.reason == "end":
                break
    finally:
        engine.set_breakpoints([], group=_TABLE_GROUP)


def print_table(
    engine: ReplayEngine,
    *,
    first: int = 1,
    last: int | None = None,
    condition: Condition | None = None,
    limit: int | None = None,
    console: Console | None = None,
) -> int:
    """Print the operations (see the module docstring); returns how many were printed."""
    console = console or Console(highlight=False, emoji=False)
    styled = console.is_terminal
    last = engine.total if last is None else min(last, engine.total)
    widths: Widths | None = None
    shown = 0
    try:
        for ops in matching(engine, first, last, condition) if limit != 0 else ():
            if limit is not None:
                ops = ops[: limit - shown]
            new = _grow(widths, ops)
            if styled:
                if widths is None:
                    console.print(Text(_legend(new), "bold underline"), no_wrap=True, overflow="ellipsis")
                text = Text("\n").join(styled_line(op, new) for op in ops)
                console.print(text, no_wrap=True, overflow="ellipsis", crop=True)
            else:
                console.file.write("".join(format_line(op, new) + "\n" for op in ops))
            widths = new
            shown += len(ops)
            if limit is not None and shown >= limit:
                break
        if not styled:
            console.file.flush()
    except BrokenPipeError:  # `opreplay replay ... | head`: stop quietly
        _silence_stdout()
        return shown
    if styled:
        summary = f"{shown:,} operation(s)"
        if condition is not None:
            summary += f" where {condition.source}"
        if first > 1 or last < engine.total:
            summary += f" in {first}..{last}" if first <= last else f" from {first}"
        summary += f" (the session has {engine.total:,})"
        if limit is not None and shown >= limit:
            summary += f", stopped at --limit {limit}"
        console.print(Text(summary, "dim"), soft_wrap=True)
    return shown


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


# -- progress and cancellation -----------------------------------------------------------------


@contextlib.contextmanager
def _delayed_status(message: str, delay: float = PROGRESS_DELAY_S) -> Iterator[None]:
    """A spinner on stderr if the block takes longer than `delay` (and stderr is a terminal)."""
    if not is_terminal():
        yield
        return
    console = Console(stderr=True)
    status = console.status(message)
    lock = threading.Lock()
    state = {"started": False, "done": False}

    def start() -> None:
        with lock:
            if not state["done"]:
                status.start()
                state["started"] = True

    timer = threading.Timer(delay, start)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["done"] = True
            if state["started"]:
                status.stop()


class LazyProgress:
    """A progress callback that draws a bar on stderr only once the work has taken a while.

    Call it with a fraction (`engine.run`) or `(done, total)` (`analysis.analyze`). Nothing is
    drawn when stderr is not a terminal. Use as a context manager so the bar is removed.
    """

    def __init__(self, description: str, units: int, *, enabled: bool | None = None) -> None:
        self.description = description
        self.units = max(1, units)
        self.enabled = is_terminal() if enabled is None else enabled
        self.started_at = time.monotonic()
        self._stack = contextlib.ExitStack()
        self._report: Callable[[int, int], None] | None = None

    def __enter__(self) -> LazyProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def __call__(self, done: float, total: int | None = None) -> None:
        if not self.enabled:
            return
        if total is None:
            done, total = done * self.units, self.units
        if self._report is None:
            if time.monotonic() - self.started_at < PROGRESS_DELAY_S:
                return
            self._report = self._stack.enter_context(progress_bar(self.description, enabled=True))
            if self._report is None:
                self.enabled = False
                return
        self._report(int(done), max(1, total))


@contextlib.contextmanager
def interruptible() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) inside the block, instead of a KeyboardInterrupt.

    Long engine scans take it as their cancel token and stop at their next batch. Outside the
    main thread (where signal handlers cannot be set) Ctrl-C keeps its default behaviour.
    """
    event = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        event.set()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield event
        return
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


# -- the debugger ----------------------------------------------------------------------------------


HELP = """\
Moving
  n [N]      next operation (or N forward)       b [N]    back one (or N)
  j N        jump N operations (negative: back)  g SEQ    go to operation SEQ (or just type SEQ)
  r          reset to the first operation
Searching (EXPR is the condition language: status == 409, kind == "ConfigMap", obj.spec.replicas > 2)
  /EXPR      next operation where EXPR is true   ?EXPR    previous one   (/ or ? alone: search again)
  c          continue to the next error          C        to the previous error
  c FILTER   ... to the next one of: {filters}
Looking
  d          what this operation changed (path: old -> new)
  o          the object after this operation, as YAML
  p EXPR     evaluate EXPR at this operation (p obj.spec.replicas, p error)
  s          session statistics: totals by verb and status, errors, loops, slow calls
Other
  h, help    this list                          q, Ctrl-D  quit
  An empty line repeats the last command; Ctrl-C stops a long search.
Names in EXPR
  {names}"""

_FILTER_IDS = tuple(f.id for f in ERROR_FILTERS)
_STATE_NAMES = frozenset({"obj", "old", "state"})
_FILTER_LABELS = {f.id: "error" if f.id == "error" else f.label.lower() for f in ERROR_FILTERS}


class Quit(Exception):
    """The user asked to leave the debugger."""


class _Cancelled(Exception):
    """Ctrl-C during work that has no cancel token of its own."""


@dataclass(frozen=True, slots=True)
class _Command:
    name: str
    argument: str


class Debugger:
    """The interactive loop of `opreplay replay -i` over one engine.

    `read` is `input` (tests pass something else); output goes to `console` (a rich Console on
    stdout by default: colours on a terminal, plain text otherwise).
    """

    def __init__(
        self,
        engine: ReplayEngine,
        *,
        database: str = "",
        console: Console | None = None,
        read: Callable[[str], str] = input,
        echo: bool | None = None,
    ) -> None:
        self.engine = engine
        self.database = database
        self.console = console or Console(highlight=False, emoji=False, soft_wrap=True)
        self.read = read
        self.echo = (not _stdin_is_terminal()) if echo is None else echo
        self.last_command: str | None = None
        self.last_search: tuple[str, bool] | None = None
        self._stats: Analysis | None = None

    # -- output helpers

    def say(self, message: str | Text, style: str = "") -> None:
        text = message if isinstance(message, Text) else Text(message, style)
        self.console.print(text, soft_wrap=True)

    def note(self, message: str) -> None:
        self.say(message, "yellow")

    def fail(self, message: str) -> None:
        self.say(message, "red")

    @property
    def prompt(self) -> str:
        return f"[op {self.engine.position}/{self.engine.total}] "

    # -- the loop

    def run(self, start: int | None = None) -> None:
        if self.read is input and _stdin_is_terminal():
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (line editing and history for input())
        engine = self.engine
        session = engine.session
        name = f" ({session.name})" if session.name else ""
        errors = f", {session.errors:,} errors" if session.errors else ""
        where = f" in {self.database}" if self.database else ""
        self.say(
            Text.assemble(
                ("session ", "bold"),
                (f"{session.id}{name}", "bold cyan"),
                f": {engine.total:,} operations{errors}{where}",
            )
        )
        self.say("n next  b back  /EXPR find  c next error  d diff  o object  s stats  h help  q quit", "dim")
        if start is not None and start != engine.position:
            self.show(engine.goto(min(start, engine.total)))
        else:
            self.show(engine.last_stop)
        self._loop()

    def _loop(self) -> None:
        while True:
            try:
                if self._once():
                    return
            except KeyboardInterrupt:  # at the prompt, or while a command ran
                self.console.print()
                self.note("(interrupted: type q or press Ctrl-D to quit)")

    def _once(self) -> bool:
        """Read and run one command; True to leave the loop."""
        try:
            line = self.read(self.prompt)
        except EOFError:
            self.console.print()
            return True
        if self.echo:
            self.console.print(Text(line), soft_wrap=True)
        line = line.strip()
        if not line:
            if self.last_command is None:
                return False
            line = self.last_command
        try:
            if self.execute(line):
                self.last_command = line
        except Quit:
            return True
        except OpreplayError as error:
            self.fail(str(error))
        return False

    def execute(self, line: str) -> bool:
        """Run one command; True when it is worth repeating on an empty line."""
        command = _parse(line)
        handler = self._handlers().get(command.name)
        if handler is None:
            if command.name.lstrip("-").isdigit() and not command.argument:
                return self.cmd_goto(command.name)
            self.fail(f"unknown command {line.split()[0]!r}: type h for the list of commands")
            return False
        return handler(command.argument)

    def _handlers(self) -> dict[str, Callable[[str], bool]]:
        return {
            "n": self.cmd_next, "next": self.cmd_next,
            "b": self.cmd_back, "back": self.cmd_back,
            "j": self.cmd_jump, "jump": self.cmd_jump,
            "g": self.cmd_goto, "goto": self.cmd_goto,
            "r": self.cmd_reset, "reset": self.cmd_reset,
            "/": self.cmd_find, "?": self.cmd_find_back,
            "c": self.cmd_continue, "continue": self.cmd_continue,
            "C": self.cmd_continue_back,
            "d": self.cmd_diff, "diff": self.cmd_diff,
            "o": self.cmd_object, "obj": self.cmd_object, "object": self.cmd_object,
            "p": self.cmd_print, "print": self.cmd_print,
            "s": self.cmd_stats, "stats": self.cmd_stats,
            "h": self.cmd_help, "help": self.cmd_help,
            "q": self.cmd_quit, "quit": self.cmd_quit, "exit": self.cmd_quit,
        }  # fmt: skip

    # -- showing where we are

    def show(self, stop: Stop, note: str | None = None) -> None:
        """The compact view of the current operation, after a note on why the cursor is there."""
        if note:
            self.say(note, "cyan")
        op = self.engine.current
        style = status_style(op)
        head = Text.assemble(
            (f"{op.seq:>6}  ", "bold"),
            (self.engine.describe(), style if op.is_error else "bold"),
        )
        self.say(head)
        detail = Text("        ")
        detail.append(status_text(op).replace("%20", " "), style)
        subresource = f"/{op.subresource}" if op.subresource else ""
        parts = [
            f"{verb_label(op.verb)} {op.api_version or '-'} {op.kind or op.resource or '-'}{subresource}",
            format_duration(op.duration_us),
            format_time(op.ts),
        ]
        if op.reconcile is not None:
            parts.append(f"reconcile {op.reconcile}")
        if op.watch is not None:
            parts.append(f"watch {op.watch}")
        parts.append(f"thread {op.thread}")
        detail.append("  " + " · ".join(parts), "dim")
        self.say(detail)
        if op.is_error and (op.message or op.reason):
            self.say(Text.assemble("        ", (op.message or op.reason or "", "red")))
        if stop.reason == "end":
            self.note("        (end of the recording)")
        elif stop.reason == "start":
            self.note("        (start of the recording)")

    def _moved(self, origin: int, stop: Stop) -> bool:
        if stop.seq == origin and stop.reason in ("end", "start"):
            where = "last" if stop.reason == "end" else "first"
            self.note(f"already at the {where} operation ({origin})")
        else:
            self.show(stop)
        return True

    def _prepare_state(self) -> bool:
        """Build the engine's missing checkpoints up to the cursor, with progress and Ctrl-C.

        The state at an operation is its nearest checkpoint plus the operations since; a session
        recorded without checkpoints gets them built on first use, which deep into a long
        session takes a while: done here with a progress bar (and cancellable between batches)
        rather than silently inside `diff` or `object_after`. False when cancelled.
        """
        engine = self.engine
        checkpoints = engine.checkpoints
        built = checkpoints.seqs
        start = built[-1] if built else 0
        if engine.position - start < checkpoints.interval:
            return True
        units = engine.position - start
        with interruptible() as cancel, LazyProgress("computing the cluster state", units) as bar:

            def progress(fraction: float) -> None:
                if cancel.is_set():
                    raise _Cancelled
                bar(fraction)

            try:
                checkpoints.extend(engine.position, progress=progress)
                done = True
            except _Cancelled:
                done = False
        if not done:
            self.note(f"cancelled: still at operation {engine.position}")
        return done

    # -- moving

    def _count(self, argument: str, default: int = 1) -> int | None:
        if not argument:
            return default
        try:
            return int(argument)
        except ValueError:
            self.fail(f"expected a number, not {argument!r}")
            return None

    def cmd_next(self, argument: str) -> bool:
        count = self._count(argument)
        if count is None:
            return False
        origin = self.engine.position
        return self._moved(origin, self.engine.step(count))

    def cmd_back(self, argument: str) -> bool:
        count = self._count(argument)
        if count is None:
            return False
        origin = self.engine.position
        return self._moved(origin, self.engine.back(count))

    def cmd_jump(self, argument: str) -> bool:
        if not argument:
            self.fail("j N: jump N operations forward, or back when N is negative (j 10, j -5)")
            return False
        return self.cmd_next(argument)

    def cmd_goto(self, argument: str) -> bool:
        seq = self._count(argument, default=0)
        if seq is None:
            return False
        if not argument:
            self.fail(f"g SEQ: go to operation SEQ (1..{self.engine.total})")
            return False
        if not 1 <= seq <= self.engine.total:
            self.fail(f"no operation {seq}: this session has operations 1..{self.engine.total}")
            return False
        self.show(self.engine.goto(seq))
        return True

    def cmd_reset(self, argument: str) -> bool:
        self.show(self.engine.reset())
        return True

    # -- searching

    def cmd_find(self, argument: str) -> bool:
        return self._find(argument, reverse=False)

    def cmd_find_back(self, argument: str) -> bool:
        return self._find(argument, reverse=True)

    def _find(self, expression: str, *, reverse: bool) -> bool:
        expression = expression.strip()
        if not expression:
            if self.last_search is None:
                self.fail("nothing to search again: /EXPR finds the next operation where EXPR is true")
                return False
            expression = self.last_search[0]
        try:
            condition = compile_condition(expression)
        except ConditionError as error:
            self.fail(_condition_message(error))
            return False
        self.last_search = (expression, reverse)
        if condition.names & _STATE_NAMES and not self._prepare_state():
            return True
        engine = self.engine
        origin = engine.position
        span = (origin - 1) if reverse else (engine.total - origin)
        with interruptible() as cancel, LazyProgress(f"searching {expression}", span) as progress:
            stop = engine.find(expression, reverse=reverse, progress=progress, cancel=cancel)
        direction = "before" if reverse else "after"
        if cancel.is_set():
            self.note(f"search cancelled: still at operation {engine.position}")
        elif stop is None:
            self.note(f"no operation {direction} {origin} where {expression}")
        else:
            self.show(stop, f"{'previous' if reverse else 'next'} where {expression}")
        return True

    def cmd_continue(self, argument: str) -> bool:
        return self._continue(argument, reverse=False)

    def cmd_continue_back(self, argument: str) -> bool:
        return self._continue(argument, reverse=True)

    def _continue(self, argument: str, *, reverse: bool) -> bool:
        filter_id = argument.strip() or "error"
        engine = self.engine
        statuses = engine.set_breakpoints([ErrorBreakpoint(filter_id)], group="opreplay-cli")
        if not statuses[0].verified:
            engine.set_breakpoints([], group="opreplay-cli")
            self.fail(f"unknown error filter {filter_id!r}: use one of {', '.join(_FILTER_IDS)}")
            return False
        origin = engine.position
        span = (origin - 1) if reverse else (engine.total - origin)
        label = _FILTER_LABELS.get(filter_id, filter_id)
        with interruptible() as cancel, LazyProgress(f"looking for the {label}", span) as progress:
            stop = engine.run(reverse, progress=progress, cancel=cancel)
        if stop.reason in ("pause", "end", "start"):
            engine.goto(origin)  # a CLI user expects to stay put rather than be thrown to an end
            if stop.reason == "pause":
                self.note(f"cancelled: still at operation {origin}")
            else:
                self.note(f"no {label} {'before' if reverse else 'after'} operation {origin}")
            return True
        note = f"{'previous' if reverse else 'next'} {label}"
        if stop.description != engine.describe():  # slow calls and loops say why
            note = stop.description
        self.show(stop, note)
        return True

    # -- looking

    def cmd_diff(self, argument: str) -> bool:
        if not self._prepare_state():
            return True
        engine = self.engine
        changes = engine.diff()
        op = engine.current
        if not changes:
            why = "it failed" if op.is_error else "a read of an unchanged object" if op.verb == "get" else ""
            self.say(
                f"operation {op.seq} changed nothing in the state the operator had seen"
                + (f" ({why})" if why else "")
            )
            return True
        self.say(f"operation {op.seq} changed {len(changes)} field(s):", "bold")
        for change in changes:
            line = Text("  ")
            line.append(change.path, "bold")
            line.append(": ")
            line.append(_value(change.old), "red" if change.old is not None else "dim")
            line.append(" -> ")
            line.append(_value(change.new), "green" if change.new is not None else "dim")
            self.say(line)
        return True

    def cmd_object(self, argument: str) -> bool:
        if not self._prepare_state():
            return True
        engine = self.engine
        op = engine.current
        key = engine.object_key(op)
        if key is None:
            self.say(
                f"operation {op.seq} is on a collection, not one object: d shows what it changed", "yellow"
            )
            return True
        document = engine.object_after(op)
        what = f"{op.kind or key.resource} {key.namespace + '/' if key.namespace else ''}{key.name}"
        if document is None:
            self.say(f"{what} does not exist after operation {op.seq} (not seen yet, or deleted)", "yellow")
            return True
        self.say(f"{what} after operation {op.seq}:", "bold")
        text = to_yaml(document)
        if self.console.is_terminal:
            from rich.syntax import Syntax

            self.console.print(
                Syntax(text.rstrip("\n"), "yaml", theme="ansi_dark", background_color="default")
            )
        else:
            self.console.print(Text(text.rstrip("\n")), soft_wrap=True)
        return True

    def cmd_print(self, argument: str) -> bool:
        if not argument.strip():
            self.fail("p EXPR: evaluate EXPR at this operation (p obj.spec.replicas, p error, p duration_ms)")
            return False
        try:
            condition = compile_condition(argument)
        except ConditionError as error:
            self.fail(_condition_message(error))
            return False
        if condition.names & _STATE_NAMES and not self._prepare_state():
            return True
        value = condition.evaluate(self.engine.context())
        if isinstance(value, (dict, list)) and value:
            self.console.print(Text(to_yaml(value).rstrip("\n")), soft_wrap=True)
        else:
            self.say(_value(value, width=None, absent="None", quote=False))
        return True

    def cmd_stats(self, argument: str) -> bool:
        if self._stats is None:
            engine = self.engine
            with LazyProgress(f"analysing {engine.session.id}", engine.total) as progress:
                self._stats = analysis.analyze(engine.store, engine.session, progress=progress)
        for line in stats_lines(self._stats):
            self.say(line)
        return True

    def cmd_help(self, argument: str) -> bool:
        from opreplay.conditions import CONTEXT_NAMES

        names = sorted(CONTEXT_NAMES)
        half = (len(names) + 1) // 2
        text = HELP.format(
            filters=", ".join(_FILTER_IDS),
            names=" ".join(names[:half]) + "\n  " + " ".join(names[half:]),
        )
        for line in text.splitlines():
            self.say(line, "" if line.startswith(" ") else "bold")
        return False

    def cmd_quit(self, argument: str) -> bool:
        raise Quit


def _stdin_is_terminal() -> bool:
    try:
        return bool(sys.stdin.isatty())
    except (AttributeError, ValueError):
        return False


def _parse(line: str) -> _Command:
    if line[0] in "/?":
        return _Command(line[0], line[1:])
    name, _, argument = line.partition(" ")
    if name not in ("c", "C"):
        name = name.lower()
    return _Command(name, argument.strip())


def _condition_message(error: ConditionError) -> str:
    message = str(error)
    if error.column is not None and "column" not in message:
        message = f"{message} (column {error.column})"
    return message


def _value(value: Any, width: int | None = VALUE_WIDTH, absent: str = "(absent)", quote: bool = True) -> str:
    """A value on one line: JSON (strings quoted, so "8" and 8 differ), cut at `width`."""
    if value is None:
        return absent
    if isinstance(value, str) and not quote:
        text = value
    else:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:
            text = repr(value)
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def to_yaml(document: Any) -> str:
    """A document as block YAML, keys in their recorded order."""
    import yaml

    return str(yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True))


def stats_lines(result: Analysis) -> list[Text]:
    """The `s` command: the session's statistics, errors, loops and slow calls, a few lines each."""
    stats = result.stats
    name = f" ({stats.name})" if stats.name else ""
    lines = [
        Text.assemble(
            (f"session {stats.session}{name}", "bold"),
            f": {stats.operations:,} operations in {stats.span_s:,.1f} s, ",
            (f"{stats.errors:,} errors", "red" if stats.errors else "green"),
            f", {stats.reconciles:,} reconciles",
        )
    ]

    def counts(title: str, values: dict[str, int]) -> Text:
        ordered = sorted(values.items(), key=lambda item: -item[1])
        return Text.assemble(
            (f"  {title:<10}", "bold"), "  ".join(f"{key} {count:,}" for key, count in ordered)
        )

    lines.append(counts("verbs", stats.verbs))
    lines.append(counts("statuses", stats.statuses))
    errors = result.errors
    if errors.groups:
        by_status = ", ".join(f"{status} x {count:,}" for status, count in errors.by_status.items())
        lines.append(Text(f"  errors    {errors.total:,} ({by_status}); by object:", "bold"))
        for group in errors.groups[:8]:
            status = f"{group.status} {group.reason or ''}".strip()
            seqs = f"ops {group.first_seq}..{group.last_seq}" if group.count > 1 else f"op {group.first_seq}"
            lines.append(
                Text.assemble(
                    "    ", (f"{group.count:>4} x {status}", "red"), f" on {group.object}  ({seqs})"
                )
            )
        if len(errors.groups) > 8:
            lines.append(Text("    ... more with `opreplay analyze`", "dim"))
        for storm in errors.storms[:4]:
            lines.append(
                Text.assemble(
                    "    ",
                    ("storm: ", "bold red"),
                    f"{storm.count} x {storm.status} on {storm.object} within {storm.duration_s:.2f} s"
                    f" (ops {storm.first_seq}..{storm.last_seq})",
                )
            )
    else:
        lines.append(Text("  errors    none", "green"))
    loops = result.loops
    if loops.hot:
        lines.append(Text(f"  loops     {len(loops.hot)} hot loop(s):", "bold"))
        for loop in loops.hot[:5]:
            lines.append(
                Text.assemble(
                    "    ",
                    (str(loop.object), "bold red"),
                    f": {loop.count:,} cycles, {loop.writes:,} writes, ops {loop.first_seq}..{loop.last_seq},"
                    f" every {loop.period_ops:g} ops / {loop.period_s * 1000:.0f} ms",
                )
            )
        if len(loops.hot) > 5:
            lines.append(Text("    ... more with `opreplay analyze`", "dim"))
    else:
        lines.append(Text("  loops     no hot loop", "green"))
    slow = result.slow
    if slow.operations:
        lines.append(Text(f"  slow      {slow.count:,} call(s) over {slow.threshold_ms:g} ms:", "bold"))
        for op in slow.operations[:5]:
            lines.append(
                Text.assemble(
                    f"    op {op.seq} {op.verb.upper()} {op.object}  ",
                    (f"{op.duration_ms:,.0f} ms", "yellow"),
                )
            )
    else:
        lines.append(Text(f"  slow      no call over {slow.threshold_ms:g} ms", "green"))
    return lines


__all__ = [
    "Debugger",
    "LazyProgress",
    "interruptible",
    "print_table",
    "replay_command",
    "stats_lines",
    "styled_line",
    "to_yaml",
]
