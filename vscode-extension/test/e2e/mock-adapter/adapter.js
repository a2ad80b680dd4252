#!/usr/bin/env node
/*
 * A stand-in for opreplay-dap, for developing the e2e test's UI driving only (`run.js --mock-adapter`).
 * It follows the DAP mapping of DESIGN.md over timeline pages written beforehand (directory in
 * OPREPLAY_MOCK_TIMELINE): next/stepBack move one operation, continue/reverseContinue run to the next/
 * previous function breakpoint hit (`kind == "K" and status == N` only), six scopes, the
 * `opreplay/position` event. It is not a test of the real adapter: `make test` never uses it.
 */
"use strict";

const fs = require("fs");
const path = require("path");

let outSeq = 1;
let buffer = Buffer.alloc(0);
let ops = [];
let pos = 0;
let breakpoints = [];
let configured = false;
let launched = false;
let stopOnEntry = true;

function send(message) {
  const json = JSON.stringify({ seq: outSeq++, ...message });
  process.stdout.write(`Content-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`);
}
const respond = (request, body, success = true, message) =>
  send({ type: "response", request_seq: request.seq, command: request.command, success, body, message });
const event = (name, body) => send({ type: "event", event: name, body });

function load(dir) {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".optrace")).sort();
  for (const file of files) {
    const full = path.join(dir, file);
    fs.readFileSync(full, "utf8")
      .split("\n")
      .forEach((text, index) => {
        const m = /^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)?(?:\s(\w+))?\s+.*?(\S+)\s+(?:\[|thread)/.exec(text);
        if (m) {
          ops.push({
            seq: Number(m[1]), time: m[2], verb: m[3], apiVersion: m[4], kind: m[5].split("/")[0], where: m[6],
            status: m[7] ? Number(m[7]) : null, reason: m[8] || "", duration: m[9], file: full, line: index + 1,
          });
        }
      });
  }
}

function matches(op) {
  return breakpoints.some((bp) => op.kind === bp.kind && op.status === bp.status);
}

function stop(reason) {
  const op = ops[pos];
  event("opreplay/position", { seq: op.seq, total: ops.length, time: op.time });
  event("stopped", { reason, threadId: 1, allThreadsStopped: true, hitBreakpointIds: reason === "function breakpoint" ? [1] : undefined });
}

function maybeStart() {
  if (configured && launched) {
    if (stopOnEntry) stop("entry");
    else run(1);
  }
}

function run(direction) {
  for (let i = pos + direction; i >= 0 && i < ops.length; i += direction) {
    if (matches(ops[i])) {
      pos = i;
      return stop("function breakpoint");
    }
  }
  pos = direction > 0 ? ops.length - 1 : 0;
  stop(direction > 0 ? "step" : "entry");
}

const handlers = {
  initialize(r) {
    respond(r, { supportsConfigurationDoneRequest: true, supportsStepBack: true, supportsFunctionBreakpoints: true, supportsConditionalBreakpoints: true });
    event("initialized");
  },
  launch(r) {
    load(process.env.OPREPLAY_MOCK_TIMELINE);
    stopOnEntry = r.arguments.stopOnEntry !== false;
    launched = true;
    respond(r);
    maybeStart();
  },
  configurationDone(r) {
    configured = true;
    respond(r);
    maybeStart();
  },
  setBreakpoints(r) {
    respond(r, { breakpoints: (r.arguments.breakpoints || []).map(() => ({ verified: false, message: "mock" })) });
  },
  setExceptionBreakpoints(r) {
    respond(r, { breakpoints: [] });
  },
  setFunctionBreakpoints(r) {
    breakpoints = [];
    const result = (r.arguments.breakpoints || []).map((bp) => {
      const m = /kind\s*==\s*"(\w+)"\s+and\s+status\s*==\s*(\d+)/.exec(bp.name);
      if (m) breakpoints.push({ kind: m[1], status: Number(m[2]) });
      return { id: 1, verified: !!m, message: m ? undefined : "mock: unsupported" };
    });
    respond(r, { breakpoints: result });
  },
  threads(r) {
    respond(r, { threads: launched ? [{ id: 1, name: "MainThread" }] : [] });
  },
  stackTrace(r) {
    const op = ops[pos];
    const status = op.status === null ? "" : `${op.status}${op.reason ? " " + op.reason : ""}`;
    respond(r, {
      stackFrames: [
        { id: 1, name: `${op.verb} ${op.apiVersion} ${op.kind} ${op.where} -> ${status} (${op.duration})`, line: op.line, column: 1, source: { name: path.basename(op.file), path: op.file } },
        { id: 2, name: "reconcile", line: 0, column: 0, presentationHint: "label" },
        { id: 3, name: "session", line: 0, column: 0, presentationHint: "label" },
      ],
      totalFrames: 3,
    });
  },
  scopes(r) {
    const names = ["Operation", "Request", "Object", "Changes", "Error", "Cluster state"];
    respond(r, { scopes: names.map((name, i) => ({ name, variablesReference: 100 + i, expensive: name === "Cluster state" })) });
  },
  variables(r) {
    const op = ops[pos];
    const ref = r.arguments.variablesReference;
    const vars =
      ref === 102
        ? [
            { name: "apiVersion", value: JSON.stringify(op.apiVersion), variablesReference: 0 },
            { name: "kind", value: JSON.stringify(op.kind), variablesReference: 0 },
            { name: "metadata", value: "{...}", variablesReference: 0 },
          ]
        : [{ name: "seq", value: String(op.seq), variablesReference: 0 }];
    respond(r, { variables: vars });
  },
  next(r) {
    respond(r);
    pos = Math.min(pos + 1, ops.length - 1);
    stop("step");
  },
  stepBack(r) {
    respond(r);
    pos = Math.max(pos - 1, 0);
    stop("step");
  },
  continue(r) {
    respond(r, { allThreadsContinued: true });
    run(1);
  },
  reverseContinue(r) {
    respond(r);
    run(-1);
  },
  disconnect(r) {
    respond(r);
    process.exit(0);
  },
};

process.stdin.on("data", (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  for (;;) {
    const end = buffer.indexOf("\r\n\r\n");
    if (end < 0) return;
    const length = Number(/Content-Length: (\d+)/i.exec(buffer.slice(0, end).toString())[1]);
    if (buffer.length < end + 4 + length) return;
    const request = JSON.parse(buffer.slice(end + 4, end + 4 + length).toString());
    buffer = buffer.slice(end + 4 + length);
    const handler = handlers[request.command];
    if (handler) handler(request);
    else respond(request, undefined, false, `mock: unsupported ${request.command}`);
  }
});
process.stdin.on("end", () => process.exit(0));
