"""The Debug Adapter Protocol server that makes a recording debuggable in VS Code.

Layers, bottom up (each module says why it is shaped the way it is):

- `protocol`: Content-Length framing over binary streams, the size cap, the JSON-lines message log.
- `schema`: validation of request arguments against the official DAP JSON schema.
- `dispatch`: the generic `Dispatcher` (handler registry, error kinds, reader/worker threads, cancel).
- `launch`, `pages`, `analysis`: the launch configuration and the recording it opens, the timeline
  pages that are the debugger's source files, the session's analysis in a child process.
- `variables`, `text`: recorded documents as DAP variables, and the words the debugger shows.
- `recording`: what an open session holds, and `SessionCore`, the base of the handler groups:
  `execution`, `inspection`, `breakpoints`, `evaluation`.
- `session`: `DebugSession` (the lifecycle, the capabilities); `transport`: stdio and TCP serving;
  `__main__`: the `opreplay-dap` command.
"""
