"""The Debug Adapter Protocol server that makes a recording debuggable in VS Code.

Layers, bottom up (each module says why it is shaped the way it is):

- `protocol`: Content-Length framing over binary streams, the size cap, the JSON-lines message log.
- `schema`: validation of request arguments against the official DAP JSON schema.
- `dispatch`: the generic `Dispatcher` (handler registry, error kinds, reader/worker threads, cancel).
- `session`: `DebugSession`, the opreplay handlers and the capabilities the adapter announces.
- `transport`: stdio and TCP serving; `__main__`: the `opreplay-dap` command.
"""
