"""`opreplay replay`: the operations as a table, and the interactive debugger (`-i`).

Everything runs on a database made by `opreplay demo` once per module (sessions "clean" and
"webapp-demo": 404s, six 409 Conflicts on Deployment default/checkout, a slow GET, a hot loop).
Expected seqs are computed from the store (the oracle), not written down, since the demo records
a real operator and timings vary; what the demo guarantees (six 409s, ConfigMaps created) is
asserted outright.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console
from test_replay_support import Recording

from opreplay.cli import main
from opreplay.cli import replay as cli_replay
from opreplay.conditions import compile_condition
from opreplay.model import Operation
from opreplay.replay import ReplayEngine
from opreplay.store import Store
from opreplay.timeline import parse_line

SESSION = "webapp-demo"
PROMPT = re.compile(r"\[op (\d+)/(\d+)\] ")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[a-zA-Z]")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "demo.db"
    subprocess.run(
        [sys.executable, "-m", "opreplay.cli", "demo", "-d", str(path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return path


@pytest.fixture(scope="module")
def ops(database: Path) -> list[Operation]:
    """Every operation of the demo session: the oracle for the expected seqs."""
    with Store.open(database) as store:
        return store.operations(store.find_session(SESSION))


def replay(database: Path, *args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(main, ["replay", SESSION, "-d", str(database), *args], input=input)


def seqs_of(output: str) -> list[int]:
    parsed = [parse_line(line) for line in output.splitlines()]
    assert all(p is not None for p in parsed), output
    return [p.seq for p in parsed if p is not None]


def oracle(ops: list[Operation], expression: str, database: Path) -> list[int]:
    """Seqs where the expression holds, evaluated one operation at a time (no scan, no window)."""
    condition = compile_condition(expression)
    with ReplayEngine.open(database, SESSION) as engine:
        return [op.seq for op in ops if condition.test(engine.context(op.seq))]


# -- the table -------------------------------------------------------------------------------------


def test_table_prints_every_operation_as_a_timeline_line(database: Path, ops: list[Operation]) -> None:
    result = replay(database)
    assert result.exit_code == 0, result.output
    assert seqs_of(result.output) == [op.seq for op in ops]
    first = parse_line(result.output.splitlines()[0])
    assert first is not None and (first.verb, first.kind) == (ops[0].verb, ops[0].kind)
    assert "\x1b[" not in result.output  # piped: plain text


def test_table_columns_are_aligned(database: Path) -> None:
    lines = replay(database).output.splitlines()
    for field in ("api_version", "status", "duration"):
        starts = set()
        for line in lines:
            parsed = parse_line(line)
            assert parsed is not None
            span = parsed.span(field, line)
            assert span is not None
            starts.add(span[0] if field != "duration" else span[1])
        assert len(starts) == 1, f"{field} column: {starts}"


def test_from_and_to_bound_the_range(database: Path, ops: list[Operation]) -> None:
    result = replay(database, "--from", "10", "--to", "20")
    assert result.exit_code == 0, result.output
    assert seqs_of(result.output) == list(range(10, 21))
    total = len(ops)
    assert seqs_of(replay(database, "--from", str(total - 5)).output) == list(range(total - 5, total + 1))
    assert seqs_of(replay(database, "--to", "3", "--to", "4").output) == [1, 2, 3, 4]
    assert replay(database, "--from", str(total + 1)).output == ""


def test_filter_lists_exactly_the_409s(database: Path, ops: list[Operation]) -> None:
    result = replay(database, "--filter", "status == 409")
    assert result.exit_code == 0, result.output
    expected = [op.seq for op in ops if op.status == 409]
    assert len(expected) == 6
    assert seqs_of(result.output) == expected
    assert all(
        "409 Conflict" in line and "Deployment default/checkout" in line
        for line in result.output.splitlines()
    )


@pytest.mark.parametrize(
    "expression",
    [
        'kind == "ConfigMap"',
        "seq == 1 or seq == 256",
        'obj.spec.replicas == 2 and kind == "Deployment"',
        'changed("spec.template.spec.containers[0].image")',
        "old is None and obj is not None",
        'verb == "create" and name in ("checkout", "search")',
    ],
)
def test_filter_matches_the_condition_evaluated_operation_by_operation(
    database: Path, ops: list[Operation], expression: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = oracle(ops, expression, database)
    assert seqs_of(replay(database, "--filter", expression).output) == expected
    # the engine scans window by window: small windows cross many boundaries
    monkeypatch.setattr(cli_replay, "SCAN_WINDOW", 7)
    assert seqs_of(replay(database, "--filter", expression).output) == expected
    inside = [seq for seq in expected if 5 <= seq <= 200]
    assert seqs_of(replay(database, "--filter", expression, "--from", "5", "--to", "200").output) == inside


def test_limit_stops_after_n_operations(database: Path, ops: list[Operation]) -> None:
    assert seqs_of(replay(database, "--limit", "3").output) == [1, 2, 3]
    conflicts = [op.seq for op in ops if op.status == 409]
    assert seqs_of(replay(database, "--filter", "status == 409", "--limit", "2").output) == conflicts[:2]
    assert replay(database, "--limit", "0").output == ""


@pytest.mark.parametrize(
    ("expression", "column"),
    [("status ==", 10), ("status = 409", 8), ("nope == 1", 1), ('kind == "x" and (', 17)],
)
def test_bad_filter_is_one_line_with_the_column_and_exit_2(
    database: Path, expression: str, column: int
) -> None:
    result = replay(database, "--filter", expression)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("opreplay: error: --filter: invalid condition")
    assert f"column {column}" in lines[0]


def test_bad_arguments_are_usage_errors(database: Path) -> None:
    assert replay(database, "--from", "20", "--to", "10").exit_code == 2
    result = replay(database, "-i", "--filter", "status == 409")
    assert result.exit_code == 2 and "not with -i" in result.output
    result = CliRunner().invoke(main, ["replay", "nope", "-d", str(database)])
    assert result.exit_code == 2 and "no session 'nope'" in result.output


def test_table_on_a_terminal_is_styled_and_summarised(database: Path, ops: list[Operation]) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="standard", width=200)
    with ReplayEngine.open(database, SESSION) as engine:
        shown = cli_replay.print_table(engine, condition=compile_condition("status >= 400"), console=console)
    text = buffer.getvalue()
    assert shown == sum(1 for op in ops if op.status >= 400)
    assert "\x1b[1;31m409 Conflict" in text  # errors in red
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert plain.splitlines()[0].split()[:4] == ["seq", "time", "(UTC)", "verb"]
    assert f"{shown} operation(s) where status >= 400 (the session has {len(ops)})" in plain


# -- the interactive debugger, driven through a pipe -------------------------------------------------


def transcript(output: str) -> list[tuple[int, str]]:
    """(position shown in the prompt, command typed) for every prompt in a piped session."""
    return [(int(m.group(1)), line[m.end() :]) for line in output.splitlines() if (m := PROMPT.match(line))]


def run_piped(database: Path, commands: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opreplay.cli", "replay", SESSION, "-d", str(database), "-i", *args],
        input="".join(f"{c}\n" for c in commands),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_interactive_session_through_a_pipe(database: Path, ops: list[Operation]) -> None:
    commands = [
        "n",
        "n",
        "b",
        "g 10",
        "d",
        "o",
        "/status == 409",
        "c",
        '?kind == "ConfigMap"',
        "s",
        "frobnicate",
        "q",
    ]
    result = run_piped(database, commands)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    first_409 = next(op.seq for op in ops if op.status == 409 and op.seq > 10)
    next_error = next(op.seq for op in ops if op.is_error and op.seq > first_409)
    configmap = max(op.seq for op in ops if op.kind == "ConfigMap" and op.seq < next_error)
    positions = [1, 2, 3, 2, 10, 10, 10, first_409, next_error, configmap, configmap, configmap]
    assert transcript(out) == list(zip(positions, commands, strict=True))
    total = len(ops)
    assert f"[op 1/{total}] " in out
    # the compact view of each stop: the describe line, then status and details
    assert re.search(r"^\s+10  get Deployment default/checkout$", out, re.M)
    assert re.search(rf"^\s+{first_409}  409 Conflict on Deployment default/checkout$", out, re.M)
    assert "Operation cannot be fulfilled" in out  # an error's message
    assert "next where status == 409" in out and "next error" in out
    assert 'previous where kind == "ConfigMap"' in out
    # d at a GET of an unchanged object, o as YAML in the recorded key order
    assert "operation 10 changed nothing" in out
    yaml = out[out.index("Deployment default/checkout after operation 10:") :]
    assert "kind: Deployment\n" in yaml and "  replicas: 2\n" in yaml
    assert yaml.index("  uid:") < yaml.index("  creationTimestamp:")  # keys not sorted
    # s: statistics from the analysis
    assert f"{total} operations" in out
    assert "409 Conflict on Deployment default/checkout" in out and "hot loop" in out
    assert "unknown command 'frobnicate': type h for the list of commands" in out


def test_repeat_jump_print_diff_and_bad_input_stay_in_the_loop(database: Path, ops: list[Operation]) -> None:
    conflicts = [op.seq for op in ops if op.status == 409]
    update = next(
        op.seq for op in ops if op.verb == "update" and op.status == 200 and op.kind == "Deployment"
    )
    commands = [
        "/status == 409",
        "",  # repeats the search
        "?",  # searches backwards again
        "j 5",
        "j -2",
        "",  # repeats j -2
        "/status ==",  # invalid: one line, stays put
        "g 100000",
        "c conflict",
        "c nonsense",
        f"g {update}",
        "d",
        "p obj.spec.replicas",
        "p error",
        "C",
        "h",
        "r",
    ]  # then EOF: quits cleanly
    result = run_piped(database, commands)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    c1, c2 = conflicts[0], conflicts[1]
    after_c = next(s for s in conflicts if s > c1 + 1)
    before_update_error = max(op.seq for op in ops if op.is_error and op.seq < update)
    positions = [1, c1, c2, c1, c1 + 5, c1 + 3, c1 + 1, c1 + 1, c1 + 1, after_c, after_c]
    positions += [update] * 4 + [before_update_error] * 2
    assert transcript(out) == [*zip(positions, commands, strict=True), (1, "")]
    assert "invalid condition at column 10: invalid syntax" in out
    assert "no operation 100000: this session has operations 1.." in out
    assert "unknown error filter 'nonsense'" in out
    image = "spec.template.spec.containers[0].image"
    assert f'{image}: "ghcr.io/opreplay/checkout:2.0" -> "ghcr.io/opreplay/checkout:2.1"' in out
    assert "\n2\n" in out  # p obj.spec.replicas
    assert "\nNone\n" in out  # p error on a successful update
    assert "Moving" in out and "/EXPR" in out  # h
    assert out.endswith(f"[op 1/{len(ops)}] \n")  # EOF after r: the last prompt, a newline, nothing else


def test_from_opens_the_debugger_at_an_operation(database: Path) -> None:
    result = run_piped(database, ["q"], "--from", "42")
    assert result.returncode == 0
    assert transcript(result.stdout) == [(42, "q")]


def test_ctrl_c_cancels_a_search_and_keeps_the_cursor(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during a long search: the engine gets the cancel token and the cursor stays."""
    with ReplayEngine.open(database, SESSION) as engine:
        engine.goto(5)
        real_find, real_run = engine.find, engine.run

        def find(*args: Any, **kwargs: Any) -> Any:
            signal.raise_signal(signal.SIGINT)  # the user presses Ctrl-C as the scan starts
            assert kwargs["cancel"].is_set()
            return real_find(*args, **kwargs)

        def run(*args: Any, **kwargs: Any) -> Any:
            signal.raise_signal(signal.SIGINT)
            return real_run(*args, **kwargs)

        monkeypatch.setattr(engine, "find", find)
        monkeypatch.setattr(engine, "run", run)
        buffer = io.StringIO()
        script = iter(["/status == 409", "c", "n", "q"])
        debugger = cli_replay.Debugger(
            engine, console=Console(file=buffer, width=200), read=lambda prompt: next(script), echo=True
        )
        debugger.run()
        out = buffer.getvalue()
        assert "\nsearch cancelled: still at operation 5\n" in out
        assert "\ncancelled: still at operation 5\n" in out
        assert engine.position == 6  # n still works afterwards
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


# -- on a real terminal ----------------------------------------------------------------------------


class _Screen:
    """What a pseudo-terminal's child writes, read up to a pattern at a time (the rest is kept)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = b""

    def expect(self, pattern: bytes, timeout: float = 30.0) -> bytes:
        """Everything up to and including the next `pattern`."""
        deadline = time.monotonic() + timeout
        while pattern not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; got {self.pending[-2000:]!r}")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the child exited before {pattern!r}; got {self.pending[-2000:]!r}")
                self.pending += chunk
        end = self.pending.index(pattern) + len(pattern)
        seen, self.pending = self.pending[:end], self.pending[end:]
        return seen


def _exit_code(pid: int, fd: int, timeout: float = 30.0) -> int:
    """Wait for the child to exit (draining its terminal meanwhile); its exit code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError):
            os.read(fd, 65536)
        time.sleep(0.05)
    raise AssertionError("the debugger did not exit")


@pytest.fixture
def terminal(database: Path) -> Iterator[tuple[int, int]]:
    """The debugger in a pseudo-terminal: (child pid, master fd)."""
    pty = pytest.importorskip("pty")
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50"}
    env.pop("NO_COLOR", None)
    argv = [sys.executable, "-m", "opreplay.cli", "replay", SESSION, "-d", str(database), "-i"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal, Ctrl-C reaches it
        try:
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(127)
    try:
        yield pid, fd
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


def test_on_a_terminal_the_prompt_colours_and_quit_work(
    terminal: tuple[int, int], ops: list[Operation]
) -> None:
    pid, fd = terminal
    screen = _Screen(fd)
    total = len(ops)
    start = screen.expect(f"[op 1/{total}] ".encode())
    assert b"\x1b[" in start  # colours on a terminal
    assert b"[bold" not in start and b"[/" not in start  # no markup leaked as text
    os.write(fd, b"n\r")
    step = screen.expect(f"[op 2/{total}] ".encode())
    assert b"watch ADDED WebApp default/checkout" in ANSI.sub(b"", step)
    os.write(fd, b"/status == 409\r")
    first_409 = next(op.seq for op in ops if op.status == 409)
    found = screen.expect(f"[op {first_409}/{total}] ".encode())
    assert b"409 Conflict on Deployment default/checkout" in ANSI.sub(b"", found)
    assert b"\x1b[1;31m409 Conflict" in found  # the error in red
    # Ctrl-C at the prompt: a hint, not an exit. Pressed as a person would, a moment after the
    # prompt: CPython's readline only notices a SIGINT that arrives once it waits for input.
    time.sleep(0.5)
    os.write(fd, b"\x03")
    screen.expect(b"Ctrl-D to quit")
    screen.expect(f"[op {first_409}/{total}] ".encode())
    os.write(fd, b"q\r")
    assert _exit_code(pid, fd) == 0


def test_on_a_terminal_ctrl_d_quits(terminal: tuple[int, int], ops: list[Operation]) -> None:
    pid, fd = terminal
    _Screen(fd).expect(f"[op 1/{len(ops)}] ".encode())
    os.write(fd, b"\x04")
    assert _exit_code(pid, fd) == 0


def test_the_interactive_debugger_keeps_the_checkpoints_it_builds(tmp_path: Path) -> None:
    """A jump deep into a long recording builds checkpoints once: they are stored for the next run."""
    recording = Recording()
    for step in range(1, 1301):
        recording.get("configmaps", "default", f"config-{step % 7}", step)
    database, session = recording.save(tmp_path / "long.db")
    result = subprocess.run(
        [sys.executable, "-m", "opreplay.cli", "replay", "latest", "-d", str(database), "-i"],
        input="g 1300\nd\nq\n",  # the diff needs the state there
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with Store.open(database) as store:
        assert store.checkpoint_seqs(session) == [500, 1000]
