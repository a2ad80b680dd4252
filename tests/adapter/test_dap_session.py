"""The dispatcher and the engine-free handlers, in process: error kinds, cancel, pause, session end."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from dapclient import InProcess

from opreplay.errors import SessionNotFound
from opreplay_adapter.dap.dispatch import ErrorKind, Request, handler_options
from opreplay_adapter.dap.protocol import MessageWriter
from opreplay_adapter.dap.recording import Recording
from opreplay_adapter.dap.session import DebugSession

Start = Callable[..., InProcess]

ANNOUNCED = [
    "supportsConfigurationDoneRequest",
    "supportsStepBack",
    "supportsConditionalBreakpoints",
    "supportsHitConditionalBreakpoints",
    "supportsLogPoints",
    "supportsFunctionBreakpoints",
    "supportsDataBreakpoints",
    "supportsExceptionFilterOptions",
    "supportsExceptionInfoRequest",
    "supportsEvaluateForHovers",
    "supportsClipboardContext",
    "supportsCompletionsRequest",
    "supportsGotoTargetsRequest",
    "supportsRestartRequest",
    "supportsTerminateRequest",
    "supportsBreakpointLocationsRequest",
    "supportsCancelRequest",
    "supportsLoadedSourcesRequest",
    "supportsValueFormattingOptions",
]
FILTERS = ["error", "conflict", "not-found", "forbidden", "server-error", "timeout", "slow", "loop"]


class Scripted(DebugSession):
    """DebugSession plus test handlers: a scan that runs until cancelled or paused, and failures."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ran: list[str] = []
        self.scanning = threading.Event()

    @handler_options(scan=True)
    def scan_request(self, request: Request) -> dict[str, Any]:
        with self.progress(request, "Scanning the recording", message="from operation 1") as progress:
            self.scanning.set()
            deadline = time.monotonic() + 10
            while not request.token.cancelled and time.monotonic() < deadline:
                progress.update(percentage=50, message="half way")
                time.sleep(0.002)
        if request.token.reason == "pause":
            return {"stoppedBy": "pause"}
        request.token.check()
        raise AssertionError("the scan was neither cancelled nor paused")

    @handler_options(scan=True)
    def answerFirst_request(self, request: Request) -> dict[str, Any]:
        """A scan that answers, then runs in a `then` action (as continue does)."""

        def run() -> None:
            self.scanning.set()
            deadline = time.monotonic() + 10
            while not request.token.cancelled and time.monotonic() < deadline:
                time.sleep(0.002)
            self.ran.append(f"stopped by {request.token.reason}")

        request.then(run)
        return {"answered": True}

    def record_request(self, request: Request) -> None:
        self.ran.append(request.arguments.get("name", ""))

    @handler_options(quick=True)
    def quickRecord_request(self, request: Request) -> None:
        self.ran.append(request.arguments.get("name", ""))

    @handler_options(quick=True)
    def quickAnnounce_request(self, request: Request) -> None:
        request.then(lambda: self.send_event("stopped", {"reason": "step", "threadId": 1}))

    def announce_request(self, request: Request) -> None:
        request.then(lambda: self.send_event("stopped", {"reason": "step", "threadId": 1}))

    def boom_request(self, request: Request) -> None:
        raise ValueError("boom\nsecond line")

    def unsendable_request(self, request: Request) -> dict[str, Any]:
        return {"value": object()}

    def notFound_request(self, request: Request) -> None:
        raise SessionNotFound("no session 'abc' in recordings.db")

    def afterFails_request(self, request: Request) -> None:
        request.then(lambda: self.ran.append(str(1 / 0)))


def scripted(item: InProcess) -> Scripted:
    assert isinstance(item.session, Scripted)
    return item.session


def error_of(response: dict[str, Any]) -> tuple[int, str]:
    assert response["success"] is False
    assert response["body"]["error"]["format"] == response["message"]
    return response["body"]["error"]["id"], response["message"]


def log_records(item: InProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in item.log_path.read_text(encoding="utf-8").splitlines()]


def test_initialize_announces_the_capabilities(in_process: Start) -> None:
    item = in_process()
    response = item.client.request("initialize", {"adapterID": "opreplay", "supportsProgressReporting": True})
    body = response["body"]
    assert {name: body.get(name) for name in ANNOUNCED} == dict.fromkeys(ANNOUNCED, True)
    filters = body["exceptionBreakpointFilters"]
    assert [f["filter"] for f in filters] == FILTERS
    for entry in filters:
        assert entry["label"] and entry["description"] and entry["supportsCondition"] is True
    # nothing is on by default: Continue runs to the user's own breakpoints until they pick a filter
    assert [f["filter"] for f in filters if f["default"]] == []
    assert item.session.client.progress_reporting is True
    assert item.session.client.invalidated_event is False
    assert item.client.request("threads")["success"]
    assert item.client.events == []  # `initialized` follows a successful launch


def test_initialize_twice_cannot_be_handled(in_process: Start) -> None:
    client = in_process().client
    assert client.request("initialize", {"adapterID": "opreplay"})["success"]
    assert error_of(client.request("initialize", {"adapterID": "opreplay"})) == (
        ErrorKind.CANT_HANDLE,
        "the session is already initialized",
    )


def test_requests_before_launch(in_process: Start) -> None:
    client = in_process().client
    client.request("initialize", {"adapterID": "opreplay"})
    done = client.request("configurationDone")
    assert done["success"] and "body" not in done
    assert client.request("threads")["body"] == {"threads": []}
    assert error_of(client.request("pause", {"threadId": 1})) == (
        ErrorKind.CANT_HANDLE,
        "no recording is open",
    )


@pytest.mark.parametrize(
    ("message", "command", "error"),
    [
        ({"command": "foo"}, "foo", "unsupported command 'foo'"),
        ({"command": "fé\n"}, "fé\n", "unsupported command 'f\\xe9\\n'"),
        (
            {"command": "pause", "arguments": {"threadId": "1"}},
            "pause",
            "invalid arguments for 'pause': threadId must be an integer",
        ),
        ({"command": "pause"}, "pause", "invalid arguments for 'pause': arguments are required"),
        (
            {"command": "pause", "arguments": []},
            "pause",
            "invalid arguments for 'pause': arguments must be an object",
        ),
        (
            {"command": "initialize", "arguments": {}},
            "initialize",
            "invalid arguments for 'initialize': adapterID is required",
        ),
        ({"command": 5}, "", "invalid request: command must be a string"),
        ({"command": "threads", "type": "event"}, "threads", 'invalid message: type must be "request"'),
        ({"command": "threads", "type": "response"}, "threads", 'invalid message: type must be "request"'),
    ],
)
def test_malformed_requests_are_protocol_errors(
    in_process: Start, message: dict[str, Any], command: str, error: str
) -> None:
    client = in_process().client
    seq = client.next_seq()
    client.send({"seq": seq, "type": "request", **message})
    response = client.response(seq)
    assert response["command"] == command
    assert error_of(response) == (ErrorKind.INVALID, error)
    assert client.request("threads")["success"]  # and the session goes on


def test_unexpected_exception_is_an_internal_error_logged_to_the_file_only(
    in_process: Start, capfd: pytest.CaptureFixture[str]
) -> None:
    item = in_process(Scripted)
    kind, message = error_of(item.client.request("boom"))
    assert kind == ErrorKind.INTERNAL
    assert message == "internal error in 'boom': ValueError: boom\\nsecond line"
    assert item.client.request("threads")["success"]
    notes = [r["text"] for r in log_records(item) if r["direction"] == "adapter"]
    assert any("Traceback" in n and "ValueError: boom" in n for n in notes)
    assert capfd.readouterr() == ("", "")


def test_a_body_that_cannot_be_sent_is_an_internal_error(in_process: Start) -> None:
    client = in_process(Scripted).client
    assert error_of(client.request("unsendable"))[1].startswith("internal error in 'unsendable': TypeError")
    assert client.request("threads")["success"]  # the client checks there is no gap in seq


def test_library_errors_cannot_be_handled(in_process: Start) -> None:
    client = in_process(Scripted).client
    assert error_of(client.request("notFound")) == (
        ErrorKind.CANT_HANDLE,
        "no session 'abc' in recordings.db",
    )


def test_a_failing_after_response_action_is_logged(in_process: Start) -> None:
    item = in_process(Scripted)
    assert item.client.request("afterFails")["success"]
    assert item.client.request("threads")["success"]
    assert any("ZeroDivisionError" in r.get("text", "") for r in log_records(item))


def test_cancel_by_progress_id(in_process: Start) -> None:
    item = in_process(Scripted)
    client = item.client
    client.request("initialize", {"adapterID": "opreplay", "supportsProgressReporting": True})
    scan = client.send_request("scan")
    start = client.wait_event("progressStart")["body"]
    assert start["requestId"] == scan and start["cancellable"] is True
    assert client.wait_event("progressUpdate")["body"]["percentage"] == 50
    assert client.request("cancel", {"progressId": start["progressId"]})["success"]
    assert error_of(client.response(scan)) == (ErrorKind.CANCELLED, "cancelled")
    end = client.wait_event("progressEnd")
    assert end["body"]["progressId"] == start["progressId"]


def test_cancel_by_request_id_running_and_queued(in_process: Start) -> None:
    item = in_process(Scripted)
    client = item.client
    client.request("initialize", {"adapterID": "opreplay"})
    scan = client.send_request("scan")
    assert scripted(item).scanning.wait(5)
    queued = client.send_request("record", {"name": "queued"})
    assert client.request("cancel", {"requestId": queued})["success"]  # answered while the scan runs
    assert client.request("cancel", {"requestId": scan})["success"]
    assert error_of(client.response(scan))[1] == "cancelled"
    assert error_of(client.response(queued))[1] == "cancelled"
    assert scripted(item).ran == []
    assert not [e for e in client.events if e["event"].startswith("progress")]  # not announced by the client
    assert client.request("cancel", {"requestId": 999, "progressId": "nope"})["success"]


def test_a_burst_of_quick_and_other_requests_is_answered_in_order(in_process: Start) -> None:
    """The worker reads while it is idle, a watcher while a request that is not quick runs: the
    input changes hands many times here, and nothing may be lost, reordered or read twice."""
    item = in_process(Scripted)
    client = item.client
    names = [f"{i}" for i in range(120)]
    sent = [
        client.send_request("quickRecord" if i % 3 else "record", {"name": name})
        for i, name in enumerate(names)
    ]
    sent.insert(60, client.send_request("cancel", {"requestId": 9999}))  # answered by whoever reads it
    assert all(client.response(seq)["success"] for seq in sent)
    answered = [m["request_seq"] for m in client.messages if m["type"] == "response"]
    assert sorted(answered) == sorted(sent) and len(set(answered)) == len(answered)
    assert [seq for seq in answered if seq != sent[60]] == [seq for seq in sent if seq != sent[60]]
    assert scripted(item).ran == names


def test_pause_stops_a_scan(in_process: Start) -> None:
    item = in_process(Scripted)
    item.session.recording = cast(Recording, SimpleNamespace(close=lambda: None))
    client = item.client
    assert client.request("pause", {"threadId": 1})["success"]  # nothing runs: already stopped
    scan = client.send_request("scan")
    assert scripted(item).scanning.wait(5)
    assert client.request("pause", {"threadId": 1})["success"]
    assert client.response(scan)["body"] == {"stoppedBy": "pause"}


def test_a_scan_running_after_its_answer_is_paused_and_preempted(in_process: Start) -> None:
    item = in_process(Scripted)
    item.session.recording = cast(Recording, SimpleNamespace(close=lambda: None))
    client = item.client
    assert client.request("answerFirst")["body"] == {"answered": True}
    assert scripted(item).scanning.wait(5)
    assert client.request("pause", {"threadId": 1})["success"]
    assert client.request("record", {"name": "after the pause"})["success"]
    assert scripted(item).ran == ["stopped by pause", "after the pause"]
    scripted(item).scanning.clear()
    assert client.request("answerFirst")["success"]
    assert scripted(item).scanning.wait(5)
    since = time.monotonic()
    assert client.request("disconnect")["success"]
    assert item.wait_ended().reason == "disconnect"
    assert time.monotonic() - since < 1
    assert scripted(item).ran[-1] == "stopped by cancelled"


def test_disconnect_cancels_a_scan_answers_quick_requests_and_ends(in_process: Start) -> None:
    item = in_process(Scripted)
    client = item.client
    scan = client.send_request("scan")
    assert scripted(item).scanning.wait(5)
    record = client.send_request("record", {"name": "before disconnect"})
    disconnect = client.send_request("disconnect", {"terminateDebuggee": True})
    assert error_of(client.response(scan))[1] == "cancelled"
    assert client.response(record)["success"]
    assert client.response(disconnect)["success"]
    assert item.wait_ended().reason == "disconnect"
    client.wait_closed()
    assert scripted(item).ran == ["before disconnect"]


def test_terminate_sends_terminated_and_ends(in_process: Start) -> None:
    item = in_process()
    response = item.client.request("terminate")
    assert response["success"]
    assert item.client.wait_event("terminated")["seq"] > response["seq"]
    assert item.wait_ended().reason == "terminate"


def test_end_of_input_answers_what_was_queued_and_cancels_scans(in_process: Start) -> None:
    item = in_process(Scripted)
    client = item.client
    scan = client.send_request("scan")
    assert scripted(item).scanning.wait(5)
    record = client.send_request("record", {"name": "last"})
    client.close_input()
    assert error_of(client.response(scan))[1] == "cancelled"
    assert client.response(record)["success"]
    ending = item.wait_ended()
    assert (ending.reason, ending.failed) == ("the client closed its input", False)


def test_broken_framing_closes_after_answering_what_came_before(in_process: Start) -> None:
    item = in_process()
    client = item.client
    seq = client.next_seq()
    client.send_raw(b'Content-Length: 46\r\n\r\n{"seq":%d,"type":"request","command":"threads"}' % seq)
    client.send_raw(b"Content-Length: twelve\r\n\r\n{}")
    assert client.response(seq)["success"]
    client.wait_closed()
    ending = item.wait_ended()
    assert ending.failed and ending.reason == "Content-Length is not a number: 'twelve'"


@pytest.mark.parametrize("seq", [None, 0, -1, "1", 1.0, True, [1]])
def test_a_message_without_a_usable_seq_closes(in_process: Start, seq: Any) -> None:
    item = in_process()
    message = {"type": "request", "command": "threads"} | ({} if seq is None else {"seq": seq})
    item.client.send(message)
    item.client.wait_closed()
    assert item.wait_ended().reason == "invalid message: seq must be a positive integer"
    assert item.client.messages == []


def test_log_file_records_every_message_in_and_out(in_process: Start) -> None:
    item = in_process()
    item.client.request("initialize", {"adapterID": "opreplay", "clientName": "Cöde"})
    item.client.request("disconnect")
    item.wait_ended()
    records = log_records(item)
    messages = [(r["direction"], r["message"]["seq"]) for r in records if "message" in r]
    assert messages == [("in", 1), ("out", 1), ("in", 2), ("out", 2)]
    assert records[0]["message"]["arguments"]["clientName"] == "Cöde"
    assert records[-1] == {
        "time": records[-1]["time"],
        "direction": "adapter",
        "level": "info",
        "text": "connection ended: disconnect",
    }


def test_a_quick_requests_answer_and_its_events_go_out_in_one_write(
    in_process: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client waiting for a step's `stopped` after its response then wakes once, not twice; a
    request that is not quick (continue, whose `then` runs a scan) is answered before its events."""
    writes: list[bytes] = []
    write_all = MessageWriter._write_all

    def recorded(self: MessageWriter, data: bytes) -> None:
        writes.append(data)
        write_all(self, data)

    monkeypatch.setattr(MessageWriter, "_write_all", recorded)
    item = in_process(Scripted)
    for command in ("quickAnnounce", "announce"):
        writes.clear()
        response = item.client.request(command)
        assert response["success"]
        item.client.wait_event("stopped", after=response["seq"])
        together = [chunk for chunk in writes if b'"event":"stopped"' in chunk]
        assert len(together) == 1
        assert (b'"command":"%s"' % command.encode() in together[0]) == (command == "quickAnnounce")
