"""opreplay's IDE front ends: the Debug Adapter Protocol server (`dap`) and the language server (`lsp`).

They translate between an editor's protocol and the core (`opreplay`); all replay logic lives in the
core, so a front end that grows logic means the core lacks a method.
"""
