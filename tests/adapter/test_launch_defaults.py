"""The launch configuration's defaults, as VS Code shows them, are the ones the adapter applies."""

from __future__ import annotations

import json
from pathlib import Path

from opreplay.analysis import DEFAULT_THRESHOLD_MS
from opreplay.replay.loops import DEFAULT_WINDOW
from opreplay_adapter.dap.launch import LaunchOptions

PACKAGE = Path(__file__).resolve().parents[2] / "vscode-extension" / "package.json"


def _launch_schema() -> dict[str, dict[str, object]]:
    package = json.loads(PACKAGE.read_text())
    (debugger,) = package["contributes"]["debuggers"]
    properties: dict[str, dict[str, object]] = debugger["configurationAttributes"]["launch"]["properties"]
    return properties


def test_the_extension_schema_defaults_are_the_adapter_defaults() -> None:
    schema = _launch_schema()
    options = LaunchOptions.parse({"database": "/tmp/recordings.db"})
    assert schema["slowThresholdMs"]["default"] == options.slow_threshold_ms == DEFAULT_THRESHOLD_MS
    assert schema["loopWindow"]["default"] == DEFAULT_WINDOW  # the engine's, when loopWindow is not given
    assert options.loop_window is None
    assert schema["stopOnEntry"]["default"] is options.stop_on_entry is True
    assert schema["session"]["default"] == options.session == "latest"
