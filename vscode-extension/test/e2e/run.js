#!/usr/bin/env node
/*
 * End-to-end test of the extension in a real VS Code: code-server in headless Chromium, driven by
 * playwright-core (see shared/recipes/vscode-e2e.md).
 *
 * Phases: heavy setup (scripts/e2e-setup.sh, cached in ~/.cache/opreplay-e2e) -> package the .vsix
 * -> a workspace with a fresh demo database and .vscode/launch.json -> code-server with a temporary
 * user-data-dir and extensions-dir -> install the .vsix -> Chromium opens the folder -> checks:
 *   the Recordings view lists the database, its sessions (newest first) and a session's summary;
 *   the session picker lists the sessions with operations, errors and duration;
 *   Open Timeline writes and opens the timeline, coloured by the grammar;
 *   F5 stops on entry: the timeline document is open with the current line highlighted, the Call
 *   Stack shows the operation, the Variables view shows the six scopes, the status bar shows the
 *   position, the toolbar offers Step Back and Reverse;
 *   F10 moves to the next operation (its Object scope shows the resource); Step Back returns;
 *   a function breakpoint `kind == "Deployment" and status == 409` is verified and hit on Continue,
 *   Continue reaches the next hit, Reverse Continue goes back to the previous hit;
 *   Shift+F5 ends the session and the adapter process exits.
 * Each step saves a screenshot in test-artifacts/ (gitignored); so do failures, with the logs.
 *
 * Nothing is skipped: a setup that fails, a missing tool, a check that fails: exit status 1 with the
 * reason. Closing line: "e2e: N passed, N failed".
 *
 * Options: --keep (leave the temp folder); --update-docs-screenshot (copy docs/screenshot-timeline.png,
 * and after a green run docs/screenshot-replay.png); --mock-adapter (a Node stand-in for the adapter,
 * test/e2e/mock-adapter, to debug the UI driving alone; never used by `make test`).
 * Environment: OPREPLAY_E2E_PYTHON (default: the repository's .venv/bin/python),
 * OPREPLAY_E2E_CACHE (default ~/.cache/opreplay-e2e), OPREPLAY_E2E_VSIX (a prebuilt .vsix),
 * OPREPLAY_E2E_TIMEOUT (seconds for one debug step, default 30).
 */
"use strict";

const { spawn, spawnSync } = require("child_process");
const fs = require("fs");
const http = require("http");
const net = require("net");
const os = require("os");
const path = require("path");

const EXT_DIR = path.resolve(__dirname, "..", "..");
const REPO = path.resolve(EXT_DIR, "..");
const ARTIFACTS = path.join(EXT_DIR, "test-artifacts");
const CACHE = process.env.OPREPLAY_E2E_CACHE || path.join(os.homedir(), ".cache", "opreplay-e2e");
const PYTHON = process.env.OPREPLAY_E2E_PYTHON || path.join(REPO, ".venv", "bin", "python");
const STEP_TIMEOUT = Number(process.env.OPREPLAY_E2E_TIMEOUT || 30) * 1000;
const FUNCTION_BREAKPOINT = 'kind == "Deployment" and status == 409';
const KEEP = process.argv.includes("--keep");
const UPDATE_DOCS = process.argv.includes("--update-docs-screenshot");
const MOCK_ADAPTER = process.argv.includes("--mock-adapter");

// ---------------------------------------------------------------------------------------------
// reporting

const results = [];
const timings = [];
const started = Date.now();
let shot = 0;

function log(message) {
  const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[${seconds}s] ${message}`);
}

async function phase(name, fn) {
  const t0 = Date.now();
  log(`phase: ${name}`);
  try {
    return await fn();
  } finally {
    timings.push([name, (Date.now() - t0) / 1000]);
  }
}

class CheckFailed extends Error {}

function fail(message) {
  throw new CheckFailed(message);
}

/** A check: passes, or fails the run (later checks depend on the state earlier ones reached). */
async function check(name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    results.push({ name, ok: true });
    log(`ok   ${name}${detail ? ` (${detail})` : ""} [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
  } catch (error) {
    results.push({ name, ok: false, error });
    log(`FAIL ${name}: ${error instanceof Error ? error.message : error}`);
    throw error;
  }
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, ...options });
  if (result.error) {
    fail(`cannot run ${command}: ${result.error.message}`);
  }
  if (result.status !== 0) {
    const output = `${result.stdout || ""}${result.stderr || ""}`.trim().split("\n").slice(-30).join("\n");
    fail(`${path.basename(command)} ${args.join(" ")} exited with ${result.status}:\n${output}`);
  }
  return result.stdout;
}

// ---------------------------------------------------------------------------------------------
// setup, package, workspace

function readEnvFile(file) {
  const env = {};
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const m = /^export (\w+)="(.*)"$/.exec(line.trim());
    if (m) env[m[1]] = m[2];
  }
  return env;
}

function newestMtime(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

function packageVsix() {
  if (process.env.OPREPLAY_E2E_VSIX) {
    if (!fs.existsSync(process.env.OPREPLAY_E2E_VSIX)) fail(`OPREPLAY_E2E_VSIX=${process.env.OPREPLAY_E2E_VSIX} does not exist`);
    return path.resolve(process.env.OPREPLAY_E2E_VSIX);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(EXT_DIR, "package.json"), "utf8"));
  const vsix = path.join(EXT_DIR, `${manifest.name}-${manifest.version}.vsix`);
  const sources = Math.max(
    newestMtime(path.join(EXT_DIR, "src")),
    newestMtime(path.join(EXT_DIR, "syntaxes")),
    ...["package.json", "language-configuration.json", "README.md", "esbuild.mjs"].map((f) => fs.statSync(path.join(EXT_DIR, f)).mtimeMs),
  );
  if (fs.existsSync(vsix) && fs.statSync(vsix).mtimeMs > sources) {
    log(`using ${path.basename(vsix)} (newer than the sources)`);
    return vsix;
  }
  run("npm", ["run", "--silent", "package"], { cwd: EXT_DIR });
  if (!fs.existsSync(vsix)) fail(`npm run package did not produce ${vsix}`);
  return vsix;
}

/** Parse timeline pages into {seq, line (1-based), verb, kind, status, text} by seq. */
function parseTimeline(files) {
  const ops = new Map();
  for (const file of files) {
    const lines = fs.readFileSync(file, "utf8").split("\n");
    lines.forEach((text, index) => {
      const m = /^\s*(\d+)\s+(\d\d:\d\d:\d\d\.\d{3})\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/.exec(text);
      if (!m) return;
      const status = /^\d+$/.test(m[7]) ? Number(m[7]) : null;
      ops.set(Number(m[1]), {
        seq: Number(m[1]),
        file,
        line: index + 1,
        time: m[2],
        verb: m[3],
        apiVersion: m[4],
        kind: m[5].split("/")[0],
        where: m[6],
        status,
        text,
      });
    });
  }
  return ops;
}

/** The expected path through the demo session, from its timeline. */
function expectations(database, dir) {
  let pages;
  const cli = path.join(path.dirname(PYTHON), "opreplay");
  const viaCli = spawnSync(cli, ["timeline", "latest", "-d", database, "-o", dir], { encoding: "utf8" });
  if (viaCli.status === 0) {
    pages = viaCli.stdout.split("\n").filter((l) => l.trim().endsWith(".optrace"));
  } else {
    // `opreplay timeline` not registered yet: the same library function the CLI and the adapter use.
    const script = [
      "import sys",
      "from pathlib import Path",
      "from opreplay.store import Store",
      "from opreplay.timeline import write_timeline",
      "with Store.open(sys.argv[1]) as store:",
      "    session = store.find_session('latest')",
      "    for p in write_timeline(store, session, Path(sys.argv[2])): print(p)",
    ].join("\n");
    pages = run(PYTHON, ["-c", script, database, dir]).split("\n").filter((l) => l.trim());
  }
  const ops = parseTimeline(pages);
  const total = ops.size;
  const hits = [...ops.values()].filter((op) => op.kind === "Deployment" && op.status === 409).map((op) => op.seq);
  if (total < 3) fail(`the demo session has ${total} operations; the test needs at least 3`);
  if (hits.length < 2 || hits[0] <= 2) {
    fail(`the demo session needs two operations matching ${FUNCTION_BREAKPOINT} after seq 2; found ${JSON.stringify(hits)}`);
  }
  return { ops, total, firstHit: hits[0], secondHit: hits[1] };
}

// ---------------------------------------------------------------------------------------------
// code-server

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function httpOk(url) {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.setTimeout(2000, () => {
      req.destroy();
      resolve(false);
    });
  });
}

async function waitFor(what, fn, timeout = STEP_TIMEOUT, interval = 250) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (error) {
      if (error instanceof CheckFailed) throw error; // a definite failure: no point in waiting
      last = error;
    }
    if (Date.now() > deadline) {
      fail(`timed out after ${timeout / 1000} s waiting for ${what}${last ? `: ${last.message || last}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

function stopProcessGroup(child, name) {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
      resolve();
    }, 5000);
    child.once("exit", () => {
      clearTimeout(timer);
      // code-server's children can outlive it by a few seconds; they are in its process group.
      setTimeout(() => {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {}
        resolve();
      }, 500);
    });
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      clearTimeout(timer);
      resolve();
    }
    log(`stopping ${name} (process group ${child.pid})`);
  });
}

// ---------------------------------------------------------------------------------------------
// the workbench

async function screenshot(page, name) {
  shot += 1;
  const file = path.join(ARTIFACTS, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

async function runCommand(page, title) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: 10000 });
  await input.fill(`>${title}`);
  // a row shows "Category: Title", or only "Title" for some commands
  const name = title.replace(/^[^:]+:\s*/, "");
  const row = page.locator(".quick-input-widget .monaco-list-row", { hasText: name }).first();
  await row.waitFor({ state: "visible", timeout: 10000 });
  await row.click();
  // leave no hover behind over what the command opens
  const editor = await page.locator(".part.editor").boundingBox();
  if (editor) await page.mouse.move(editor.x + editor.width / 2, editor.y + editor.height - 20);
}

/** What the workbench shows of the debug state now. */
async function debugState(page) {
  return page.evaluate(() => {
    const text = (el) => (el ? el.textContent.replace(/\s+/g, " ").trim() : null);
    const state = {};
    // the editor with the top stack frame decoration (the highlighted current line)
    const deco = document.querySelector(".monaco-editor .view-overlays .debug-top-stack-frame-line");
    if (deco) {
      const editor = deco.closest(".monaco-editor");
      const top = deco.parentElement.style.top;
      const line = [...editor.querySelectorAll(".view-lines .view-line")].find((l) => l.style.top === top);
      state.highlighted = line ? line.textContent.replace(/\u00a0/g, " ") : null;
    }
    const tab = document.querySelector(".editor-group-container.active .tab.active") || document.querySelector(".tab.active");
    state.activeTab = tab ? tab.getAttribute("data-resource-name") || tab.getAttribute("aria-label") || text(tab) : null;
    const frames = [...document.querySelectorAll(".debug-call-stack .monaco-list-row .stack-frame")];
    state.frames = frames.map((f) => text(f.querySelector(".label")) || text(f));
    state.threads = [...document.querySelectorAll(".debug-call-stack .monaco-list-row .thread")].map((t) => text(t));
    state.scopes = [...document.querySelectorAll(".debug-variables .monaco-list-row .scope")].map((s) => text(s));
    state.variables = [...document.querySelectorAll(".debug-variables .monaco-list-row .expression .name")].map((n) => text(n).replace(/\s*[=:]$/, ""));
    const status = [...document.querySelectorAll(".statusbar-item")].map((s) => text(s)).find((t) => t && /^op \d/.test(t));
    state.statusBar = status || null;
    state.toolbar = [...document.querySelectorAll(".debug-toolbar .action-label, .debug-toolbar .action-item a")]
      .map((a) => a.getAttribute("aria-label") || a.title)
      .filter(Boolean);
    // error and warning notifications only (progress and info toasts are normal)
    state.notifications = [...document.querySelectorAll(".notifications-toasts .notification-list-item")]
      .filter((n) => n.querySelector(".codicon-error, .codicon-warning"))
      .map((n) => text(n.querySelector(".notification-list-item-message")));
    return state;
  });
}

/** The adapter's failed responses and error notes so far, from its message log. */
function adapterFailures() {
  const file = path.join(ARTIFACTS, "adapter-messages.jsonl");
  if (!fs.existsSync(file)) return " The adapter wrote no message log (did it start?).";
  const lines = [];
  for (const raw of fs.readFileSync(file, "utf8").split("\n")) {
    if (!raw.trim()) continue;
    try {
      const entry = JSON.parse(raw);
      const m = entry.message;
      if (m && m.type === "response" && m.success === false) lines.push(`${m.command}: ${m.message}`);
      else if (entry.level === "error") lines.push(String(entry.text).split("\n").slice(-2).join(" "));
    } catch {}
  }
  return lines.length ? ` The adapter answered:\n    ${lines.slice(0, 8).join("\n    ")}` : "";
}

function seqOf(line) {
  const m = line && /^\s*(\d+)\s+\d\d:\d\d:\d\d\.\d{3}\s/.exec(line);
  return m ? Number(m[1]) : null;
}

/** Whether a stack frame names the operation (`PATCH apps/v1 Deployment default/web -> 409 Conflict (12 ms)`). */
function frameNames(frame, op) {
  const verb = op.verb === "EVENT" ? /^(EVENT|WATCH-EVENT)\s/i : new RegExp(`^${op.verb}\\s`, "i");
  return verb.test(frame) && frame.includes(op.kind) && frame.includes(op.where);
}

/** Wait until the debugger shows operation `seq`: highlighted timeline line, top frame, status bar. */
async function expectAt(page, seq, expected, what) {
  const op = expected.ops.get(seq);
  let state;
  const since = Date.now();
  await waitFor(`${what}: the highlighted timeline line to be seq ${seq}`, async () => {
    state = await debugState(page);
    if (Date.now() - since > 3000 && !state.toolbar.length) {
      fail(`the debug session is not running (no debug toolbar).${adapterFailures()}`);
    }
    if (state.notifications.some((n) => /opreplay|adapter|error/i.test(n))) {
      fail(`a notification: ${state.notifications.join(" | ")}`);
    }
    // the editor and the Call Stack update separately: wait for both
    return seqOf(state.highlighted) === seq && state.frames.length > 0 && frameNames(state.frames[0], op);
  }).catch((error) => {
    if (/debug session is not running|a notification:/.test(error.message)) throw error;
    if (state && seqOf(state.highlighted) === seq && state.frames.length) {
      fail(`the top stack frame is "${state.frames[0]}"; expected the operation "${op.verb} ${op.apiVersion} ${op.kind} ${op.where} -> ..."`);
    }
    fail(`${error.message}\n  last state: ${JSON.stringify(state)}`);
  });
  if (!state.activeTab || !state.activeTab.endsWith(".optrace")) fail(`the active editor is ${state.activeTab}, not a timeline document`);
  const top = state.frames[0];
  // DAP mapping: `PATCH apps/v1 Deployment default/web -> 409 Conflict (12 ms)`
  if (!frameNames(top, op) || !top.includes("->")) {
    fail(`the top stack frame is "${top}"; expected the operation "${op.verb} ${op.apiVersion} ${op.kind} ${op.where} -> ..."`);
  }
  if (op.status !== null && !top.includes(String(op.status))) fail(`the top stack frame "${top}" lacks the status ${op.status}`);
  await waitFor(`the status bar to show op ${seq}`, async () => {
    state = await debugState(page);
    return state.statusBar && state.statusBar.includes(`op ${seq.toLocaleString("en-US")} / ${expected.total.toLocaleString("en-US")}`);
  }).catch(() => fail(`the status bar shows ${JSON.stringify(state.statusBar)}; expected "op ${seq} / ${expected.total} - ${op.time}"`));
  if (!state.statusBar.includes(op.time)) fail(`the status bar "${state.statusBar}" lacks the time ${op.time}`);
  return state;
}

/**
 * Expand one scope of the Variables view (collapsing the others: the list renders only visible rows)
 * and return the names of the variables then shown, once `ready(names)` holds or `timeout` passes.
 */
async function expandScope(page, scope, ready, timeout = 15000) {
  const row = (name) => page.locator(".debug-variables .monaco-list-row", { has: page.locator(".scope", { hasText: new RegExp(`^${name}`) }) }).first();
  let names = [];
  let lastClick = 0;
  await waitFor(`the ${scope} scope's variables`, async () => {
    const state = await debugState(page);
    for (const other of state.scopes.filter((s) => !s.startsWith(scope))) {
      if ((await row(other).getAttribute("aria-expanded").catch(() => null)) === "true") await row(other).locator(".monaco-tl-twistie").click();
    }
    names = (await debugState(page)).variables;
    if ((await row(scope).getAttribute("aria-expanded")) === "true" && ready(names)) return true;
    // the view re-renders after a stop: click again if the first click was lost
    if (Date.now() - lastClick > 2000 && (await row(scope).getAttribute("aria-expanded")) !== "true") {
      lastClick = Date.now();
      await row(scope).locator(".monaco-tl-twistie").click();
    }
    return false;
  }, timeout).catch(() => {});
  return names;
}

const WRITES_OR_READS = new Set(["GET", "CREATE", "UPDATE", "PATCH", "EVENT"]);

/** Expand or collapse a view pane of the side bar by its title. */
async function setPane(page, title, expanded) {
  const header = page.locator(".pane-header", { hasText: new RegExp(`^\\s*${title}`, "i") }).first();
  await header.waitFor({ state: "visible", timeout: 10000 });
  if (((await header.getAttribute("aria-expanded")) === "true") !== expanded) await header.click();
}

async function clickToolbar(page, label) {
  const button = page.locator(`.debug-toolbar .action-label[aria-label^="${label}"]`).first();
  await button.waitFor({ state: "visible", timeout: 10000 }).catch(async () => {
    const state = await debugState(page);
    fail(`no "${label}" button in the debug toolbar; it has: ${JSON.stringify(state.toolbar)}`);
  });
  await button.click();
}

// ---------------------------------------------------------------------------------------------

async function main() {
  fs.rmSync(ARTIFACTS, { recursive: true, force: true });
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "opreplay-e2e-"));
  let codeServer;
  let browser;
  let page;
  const codeServerLog = path.join(ARTIFACTS, "code-server.log");
  try {
    const env = await phase("heavy setup (scripts/e2e-setup.sh)", () => {
      const setup = spawnSync("bash", [path.join(REPO, "scripts", "e2e-setup.sh")], {
        encoding: "utf8",
        env: { ...process.env, OPREPLAY_E2E_CACHE: CACHE },
      });
      process.stdout.write(setup.stdout || "");
      if (setup.status !== 0) {
        fail(`scripts/e2e-setup.sh failed (exit ${setup.status ?? setup.error}):\n${(setup.stderr || "").trim()}`);
      }
      return readEnvFile(path.join(CACHE, "env.sh"));
    });
    for (const key of ["OPREPLAY_E2E_NODE_BIN", "OPREPLAY_E2E_CODE_SERVER", "OPREPLAY_E2E_PLAYWRIGHT", "OPREPLAY_E2E_CHROMIUM"]) {
      if (!env[key]) fail(`${path.join(CACHE, "env.sh")} lacks ${key}`);
    }
    if (!fs.existsSync(PYTHON)) fail(`no Python with opreplay at ${PYTHON} (run "make" first, or set OPREPLAY_E2E_PYTHON)`);
    const { chromium } = require(env.OPREPLAY_E2E_PLAYWRIGHT);

    const vsix = await phase("package the .vsix", packageVsix);

    const { workspace, database, expected } = await phase("workspace with a demo database", () => {
      const workspace = path.join(tmp, "workspace");
      fs.mkdirSync(path.join(workspace, ".vscode"), { recursive: true });
      const database = path.join(workspace, "demo.db");
      run(path.join(path.dirname(PYTHON), "opreplay"), ["demo", "-d", database], { cwd: tmp });
      const expected = expectations(database, path.join(tmp, "expected-timeline"));
      fs.writeFileSync(
        path.join(workspace, ".vscode", "launch.json"),
        JSON.stringify(
          {
            version: "0.2.0",
            configurations: [
              {
                type: "opreplay",
                request: "launch",
                name: "Replay",
                database: "${workspaceFolder}/demo.db",
                session: "latest",
                stopOnEntry: true,
              },
            ],
          },
          null,
          2,
        ),
      );
      log(`demo session: ${expected.total} operations; ${FUNCTION_BREAKPOINT} at seq ${expected.firstHit}, ${expected.secondHit}, ...`);
      return { workspace, database, expected };
    });

    const userData = path.join(tmp, "user-data");
    const extensions = path.join(tmp, "extensions");
    const port = await freePort();
    const csEnv = { ...process.env, PATH: `${env.OPREPLAY_E2E_NODE_BIN}${path.delimiter}${process.env.PATH}` };
    let python = PYTHON;
    if (MOCK_ADAPTER) {
      python = path.join(__dirname, "mock-adapter", "python");
      csEnv.OPREPLAY_MOCK_TIMELINE = path.join(tmp, "expected-timeline");
      csEnv.OPREPLAY_MOCK_REAL_PYTHON = PYTHON;
      log("--mock-adapter: the adapter is the Node stand-in test/e2e/mock-adapter (UI driving only)");
    }

    await phase("install the .vsix into code-server", () => {
      fs.mkdirSync(path.join(userData, "User"), { recursive: true });
      fs.writeFileSync(path.join(userData, "config.yaml"), `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
      // Settings of scope machine(-overridable) (opreplay.python, opreplay.adapterLogFile) are read from
      // the server's Machine settings in code-server, as in any remote window; the rest from User.
      fs.mkdirSync(path.join(userData, "Machine"), { recursive: true });
      fs.writeFileSync(
        path.join(userData, "Machine", "settings.json"),
        JSON.stringify(
          {
            "opreplay.python": python,
            "opreplay.adapterLogFile": path.join(ARTIFACTS, "adapter-messages.jsonl"),
          },
          null,
          2,
        ),
      );
      fs.writeFileSync(
        path.join(userData, "User", "settings.json"),
        JSON.stringify(
          {
            "security.workspace.trust.enabled": false,
            "workbench.startupEditor": "none",
            "workbench.tips.enabled": false,
            "workbench.enableExperiments": false,
            "workbench.colorTheme": "Default Dark Modern",
            "workbench.secondarySideBar.defaultVisibility": "hidden",
            "telemetry.telemetryLevel": "off",
            "update.mode": "none",
            "extensions.autoCheckUpdates": false,
            "extensions.ignoreRecommendations": true,
            "chat.disableAIFeatures": true,
            "editor.minimap.enabled": false,
            "window.restoreWindows": "none",
            "debug.openDebug": "openOnSessionStart",
            "debug.toolBarLocation": "floating",
            "debug.internalConsoleOptions": "neverOpen",
            "git.enabled": false,
          },
          null,
          2,
        ),
      );
      const out = run(
        env.OPREPLAY_E2E_CODE_SERVER,
        ["--user-data-dir", userData, "--extensions-dir", extensions, "--config", path.join(userData, "config.yaml"), "--install-extension", vsix],
        { env: csEnv },
      );
      if (!/successfully installed/i.test(out)) fail(`code-server --install-extension said: ${out.trim()}`);
      log(out.trim().split("\n").pop());
    });

    await phase("start code-server", async () => {
      const logFd = fs.openSync(codeServerLog, "w");
      codeServer = spawn(
        env.OPREPLAY_E2E_CODE_SERVER,
        [
          "--auth", "none",
          "--bind-addr", `127.0.0.1:${port}`,
          "--user-data-dir", userData,
          "--extensions-dir", extensions,
          "--disable-telemetry",
          "--disable-update-check",
          "--config", path.join(userData, "config.yaml"),
          workspace,
        ],
        { env: csEnv, stdio: ["ignore", logFd, logFd], detached: true },
      );
      fs.closeSync(logFd);
      codeServer.on("exit", (code, signal) => log(`code-server exited (${code ?? signal})`));
      await waitFor("code-server's /healthz", async () => {
        if (codeServer.exitCode !== null) fail(`code-server exited with ${codeServer.exitCode}: ${fs.readFileSync(codeServerLog, "utf8").slice(-2000)}`);
        return httpOk(`http://127.0.0.1:${port}/healthz`);
      }, 60000, 500);
    });

    await phase("open the workspace in headless Chromium", async () => {
      browser = await chromium.launch({ executablePath: env.OPREPLAY_E2E_CHROMIUM, headless: true, args: ["--no-sandbox"] });
      const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
      page = await context.newPage();
      const consoleLog = fs.createWriteStream(path.join(ARTIFACTS, "browser-console.log"));
      page.on("console", (m) => consoleLog.write(`[${m.type()}] ${m.text()}\n`));
      await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
      await page.locator(".monaco-workbench").waitFor({ state: "visible", timeout: 60000 });
      // the explorer shows the workspace once the folder is open
      await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "demo.db" }).first().waitFor({ timeout: 60000 });
      // a wider side bar, so that the views' labels show in the screenshots
      const sidebar = await page.locator(".part.sidebar").boundingBox();
      if (sidebar) {
        const x = sidebar.x + sidebar.width + 2;
        const y = sidebar.y + sidebar.height / 2;
        await page.mouse.move(x, y);
        await page.mouse.down();
        await page.mouse.move(x + 260, y, { steps: 5 });
        await page.mouse.up();
      }
      await screenshot(page, "workbench");
    });

    await phase("checks", async () => {
      await check("the Recordings view lists the demo database and its sessions, newest first", async () => {
        await runCommand(page, "View: Show Run and Debug");
        const view = page.locator(".pane", { has: page.locator(".pane-header", { hasText: /Recordings/i }) });
        await view.waitFor({ state: "visible", timeout: 20000 });
        await setPane(page, "Recordings", true);
        const session = view.locator(".monaco-list-row", { hasText: "webapp-demo" }).first();
        await session.waitFor({ state: "visible", timeout: 30000 });
        const rows = await view.locator(".monaco-list-row").allTextContents();
        const db = rows.findIndex((r) => r.includes("demo.db"));
        const demo = rows.findIndex((r) => r.includes("webapp-demo") && r.includes("latest"));
        const clean = rows.findIndex((r) => r.includes("clean"));
        if (db < 0 || demo < 0 || clean < 0 || !(db < demo && demo < clean)) fail(`the Recordings view shows ${JSON.stringify(rows)}`);
        if (!/\d+ operations, \d+ errors/.test(rows[demo])) fail(`the session row lacks its description: ${rows[demo]}`);
        // the session's summary (from `opreplay info --json` and `analyze --json`)
        await session.locator(".monaco-tl-twistie").click();
        const summary = view.locator(".monaco-list-row", { hasText: /^(errors: |no errors)/ }).first();
        await summary.waitFor({ state: "visible", timeout: 30000 }).catch(async () => {
          fail(`no error summary under the session: ${JSON.stringify(await view.locator(".monaco-list-row").allTextContents())}`);
        });
        const lines = (await view.locator(".monaco-list-row").allTextContents()).map((t) => t.trim());
        if (!lines.some((l) => l.startsWith(`${expected.total} operations in `))) fail(`no operation count in the summary: ${JSON.stringify(lines)}`);
        const summaryText = (await summary.textContent()).trim();
        // room for the Recordings view in the screenshot; the debug views come back for F5
        for (const pane of ["Variables", "Watch", "Call Stack", "Breakpoints"]) await setPane(page, pane, false);
        await session.hover();
        await screenshot(page, "recordings-view");
        // lists render only their visible rows: give the Variables view the room
        await setPane(page, "Recordings", false);
        for (const pane of ["Variables", "Call Stack", "Breakpoints"]) await setPane(page, pane, true);
        return `${rows[demo].replace(/\s+/g, " ")}; ${summaryText}`;
      });

      await check("the session picker lists the sessions newest first, with operations, errors and duration", async () => {
        await runCommand(page, "opreplay: Pick a Recorded Session...");
        const rows = page.locator(".quick-input-widget .monaco-list-row");
        await page.locator(".quick-input-widget .monaco-list-row", { hasText: "webapp-demo" }).first().waitFor({ timeout: 20000 });
        const texts = (await rows.allTextContents()).map((t) => t.replace(/\s+/g, " ").trim());
        await screenshot(page, "session-picker");
        await page.keyboard.press("Escape");
        if (texts.length < 2 || !texts[0].includes("webapp-demo") || !texts[0].includes("(latest)")) fail(`the picker shows ${JSON.stringify(texts)}`);
        if (!texts.some((t) => t.includes("clean"))) fail(`no "clean" session in ${JSON.stringify(texts)}`);
        if (!new RegExp(`${expected.total} operations, \\d+ errors, [\\d.]+ (ms|s)`).test(texts[0])) fail(`the first item lacks operations, errors and duration: ${texts[0]}`);
        return texts[0];
      });

      await check("Open Timeline writes the latest session's timeline and opens it, coloured by the grammar", async () => {
        await runCommand(page, "opreplay: Open Timeline");
        let state;
        await waitFor("a timeline document", async () => {
          state = await debugState(page);
          if (state.notifications.some((n) => /opreplay/i.test(n))) fail(`a notification: ${state.notifications.join(" | ")}`);
          return state.activeTab && state.activeTab.endsWith(".optrace");
        }, 30000).catch((e) => fail(e instanceof CheckFailed ? e.message : `no timeline document opened; active tab ${state && state.activeTab}`));
        const countColours = () =>
          page.evaluate(() => {
            const classes = new Set();
            for (const span of document.querySelectorAll(".editor-group-container.active .view-lines .view-line span span")) {
              for (const c of span.classList) if (/^mtk\d+$/.test(c)) classes.add(c);
            }
            return classes.size;
          });
        let colours = 0;
        // tokenization runs after the document shows
        await waitFor("the grammar's colours", async () => (colours = await countColours()) >= 5, 10000).catch(() =>
          fail(`the timeline shows ${colours} token colours; the grammar gives verbs, kinds and statuses their own`),
        );
        const language = await page.locator(".statusbar-item", { hasText: "opreplay Timeline" }).count();
        if (!language) fail("the status bar does not name the language \"opreplay Timeline\"");
        await setPane(page, "Recordings", true);
        await screenshot(page, "open-timeline");
        await setPane(page, "Recordings", false);
        await runCommand(page, "View: Close All Editors");
        return `${state.activeTab}, ${colours} colours`;
      });

      await check("F5 starts the adapter and stops on entry at the first operation", async () => {
        await page.locator(".part.editor").click({ position: { x: 400, y: 300 } });
        await page.keyboard.press("F5");
        const state = await expectAt(page, 1, expected, "stop on entry");
        await screenshot(page, "stopped-on-entry");
        return `frame "${state.frames[0]}", status bar "${state.statusBar}"`;
      });

      await check("the timeline document is open with the current line highlighted", async () => {
        const state = await debugState(page);
        if (!state.activeTab.endsWith(".optrace")) fail(`active tab ${state.activeTab}`);
        if (seqOf(state.highlighted) !== 1) fail(`highlighted line: ${JSON.stringify(state.highlighted)}`);
        const glyph = await page.locator(".monaco-editor .codicon-debug-stackframe").count();
        if (!glyph) fail("no current-frame arrow in the editor's glyph margin");
        return `${state.activeTab}: "${state.highlighted.trim().slice(0, 60)}..."`;
      });

      await check("the Call Stack shows the operation as the top frame", async () => {
        // expectAt checked the top frame against the timeline; VS Code hides the thread row when
        // there is one thread, so threads are shown only when the recording has several.
        const state = await debugState(page);
        const op = expected.ops.get(1);
        if (!state.frames[0].includes(op.where)) fail(`the top frame "${state.frames[0]}" does not name ${op.where}`);
        return `frames ${JSON.stringify(state.frames)}${state.threads.length ? `, threads ${JSON.stringify(state.threads)}` : ""}`;
      });

      await check("the Variables view shows the scopes, Object among them", async () => {
        let state;
        await waitFor("the scopes", async () => {
          state = await debugState(page);
          return ["Operation", "Object"].every((s) => state.scopes.some((x) => x.startsWith(s)));
        }).catch(() => fail(`the Variables view shows scopes ${JSON.stringify(state.scopes)}`));
        // Request appears when the operation sent a body and Error when it failed (the entry stop is a watch);
        // Cluster state, the last scope, may lie below the rows the list renders in this viewport
        for (const scope of ["Operation", "Object", "Changes"]) {
          if (!state.scopes.some((x) => x.startsWith(scope))) fail(`no ${scope} scope in ${JSON.stringify(state.scopes)}`);
        }
        await screenshot(page, "variables");
        return JSON.stringify(state.scopes);
      });

      await check("the debug toolbar offers Step Back and Reverse (supportsStepBack)", async () => {
        const state = await debugState(page);
        for (const label of ["Step Back", "Reverse"]) {
          if (!state.toolbar.some((t) => t.startsWith(label))) fail(`no ${label} in the toolbar ${JSON.stringify(state.toolbar)}`);
        }
        return JSON.stringify(state.toolbar);
      });

      await check("F10 moves to the next operation", async () => {
        await page.keyboard.press("F10");
        const state = await expectAt(page, 2, expected, "F10");
        // an operation that carries an object (a watch event, a successful read or write): the
        // Object scope shows the resource
        const op = expected.ops.get(2);
        let detail = "";
        if (WRITES_OR_READS.has(op.verb) && (op.status === null || (op.status >= 200 && op.status < 300)) && !op.where.endsWith("*")) {
          const names = await expandScope(page, "Object", (n) => ["kind", "metadata"].every((k) => n.includes(k)));
          if (!["kind", "metadata"].every((k) => names.includes(k))) {
            fail(`the Object scope of "${op.text.trim()}" shows ${JSON.stringify(names)}; expected the resource (kind, metadata, ...)`);
          }
          detail = `, Object: ${names.join(", ")}`;
        }
        await screenshot(page, "step-over");
        return `frame "${state.frames[0]}"${detail}`;
      });

      await check("Step Back returns to the previous operation", async () => {
        await clickToolbar(page, "Step Back");
        const state = await expectAt(page, 1, expected, "Step Back");
        await screenshot(page, "step-back");
        return `frame "${state.frames[0]}"`;
      });

      await check(`a function breakpoint "${FUNCTION_BREAKPOINT}" is verified`, async () => {
        await runCommand(page, "Debug: Add Function Breakpoint");
        const input = page.locator(".debug-breakpoints .monaco-inputbox input, .debug-pane .monaco-inputbox input").first();
        await input.waitFor({ state: "visible", timeout: 10000 });
        await input.fill(FUNCTION_BREAKPOINT);
        await page.keyboard.press("Enter");
        const row = page.locator(".debug-breakpoints .monaco-list-row", { hasText: "Deployment" }).first();
        await row.waitFor({ state: "visible", timeout: 10000 });
        await waitFor("the breakpoint to be verified", async () => {
          const unverified = await row.locator(".codicon-debug-breakpoint-function-unverified, .codicon-debug-breakpoint-unverified").count();
          const verified = await row.locator(".codicon-debug-breakpoint-function").count();
          return verified > 0 && unverified === 0;
        }, 10000).catch(async () => fail(`the function breakpoint is not verified: ${(await row.getAttribute("aria-label")) || (await row.textContent())}`));
        return (await row.textContent()).trim();
      });

      await check(`Continue stops at the first hit (seq ${expected.firstHit})`, async () => {
        await page.keyboard.press("F5");
        const state = await expectAt(page, expected.firstHit, expected, "Continue");
        // the Object scope, opened for the screenshot (a failed write may have no object after it:
        // its content is checked at F10, on an operation that certainly has one)
        const names = await expandScope(page, "Object", (n) => n.length > 0, 5000);
        await screenshot(page, "breakpoint-hit");
        return `frame "${state.frames[0]}", Object: ${names.slice(0, 8).join(", ")}`;
      });

      await check(`Continue reaches the next hit (seq ${expected.secondHit})`, async () => {
        await page.keyboard.press("F5");
        await expectAt(page, expected.secondHit, expected, "second Continue");
        await screenshot(page, "breakpoint-second-hit");
      });

      await check(`Reverse Continue goes back to the previous hit (seq ${expected.firstHit})`, async () => {
        await clickToolbar(page, "Reverse");
        await expectAt(page, expected.firstHit, expected, "Reverse Continue");
        await screenshot(page, "reverse-continue");
      });

      await check("Shift+F5 ends the session and the adapter exits", async () => {
        await page.keyboard.press("Shift+F5");
        await waitFor("the debug toolbar to go", async () => (await page.locator(".debug-toolbar").isVisible()) === false, 15000);
        // the status bar item goes when the extension sees the session end, a moment after the toolbar
        let state;
        await waitFor("the status bar item to go", async () => {
          state = await debugState(page);
          return !state.statusBar;
        }, 10000).catch(() => fail(`the status bar still shows ${state.statusBar}`));
        await waitFor("the adapter process to exit", async () => {
          const ps = spawnSync("pgrep", ["-f", "opreplay_adapter.dap"], { encoding: "utf8" });
          const pids = (ps.stdout || "").split("\n").filter(Boolean).filter((pid) => {
            try {
              return fs.readFileSync(`/proc/${pid}/environ`, "utf8").includes(userData) || isDescendant(Number(pid), codeServer.pid);
            } catch {
              return false;
            }
          });
          return pids.length === 0;
        }, 10000);
        await screenshot(page, "session-ended");
      });
    });
  } catch (error) {
    if (!results.some((r) => !r.ok)) results.push({ name: "run", ok: false, error });
    if (page) {
      await screenshot(page, "failure").catch(() => {});
    }
    console.error(`\ne2e failed: ${error instanceof Error ? error.message : error}`);
    if (!(error instanceof CheckFailed) && error && error.stack) console.error(error.stack);
    for (const [label, file] of [
      ["code-server log", codeServerLog],
      ["adapter messages", path.join(ARTIFACTS, "adapter-messages.jsonl")],
    ]) {
      if (fs.existsSync(file)) {
        const tail = fs.readFileSync(file, "utf8").trim().split("\n").slice(-15).join("\n");
        console.error(`--- ${label} (last lines, ${path.relative(EXT_DIR, file)}) ---\n${tail}`);
      }
    }
    copyExtensionLogs(tmp);
  } finally {
    if (browser) await browser.close().catch(() => {});
    await stopProcessGroup(codeServer, "code-server");
    if (KEEP) log(`kept ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }

  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  if (UPDATE_DOCS && MOCK_ADAPTER) {
    log("not updating docs/ from a --mock-adapter run");
  } else if (UPDATE_DOCS) {
    // the timeline and Recordings view need no adapter; the replay one needs a green run
    const copies = [["open-timeline.png", "screenshot-timeline.png", results.some((r) => r.ok && r.name.startsWith("Open Timeline"))]];
    copies.push(["breakpoint-hit.png", "screenshot-replay.png", failed === 0]);
    for (const [suffix, target, ok] of copies) {
      const source = fs.readdirSync(ARTIFACTS).find((f) => f.endsWith(suffix));
      if (ok && source) {
        const docs = path.join(EXT_DIR, "..", "docs");
        fs.mkdirSync(docs, { recursive: true });
        fs.copyFileSync(path.join(ARTIFACTS, source), path.join(docs, target));
        log(`updated docs/${target}`);
      }
    }
  }
  console.log("\nphase timings:");
  for (const [name, seconds] of timings) console.log(`  ${seconds.toFixed(1).padStart(6)} s  ${name}`);
  console.log(`screenshots and logs: ${path.relative(process.cwd(), ARTIFACTS) || ARTIFACTS}`);
  console.log(`e2e: ${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 && results.length > 0 ? 0 : 1;
}

function isDescendant(pid, ancestor) {
  for (let current = pid, depth = 0; current > 1 && depth < 50; depth++) {
    if (current === ancestor) return true;
    try {
      const stat = fs.readFileSync(`/proc/${current}/stat`, "utf8");
      current = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      return false;
    }
  }
  return false;
}

/** VS Code's extension host log and our output channel, for a failed run. */
function copyExtensionLogs(tmp) {
  const logs = path.join(tmp, "user-data", "logs");
  if (!fs.existsSync(logs)) return;
  const wanted = /(exthost\.log|opreplay\.log|remoteagent\.log|\d+-opreplay\.log)$/;
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (wanted.test(entry.name)) {
        fs.copyFileSync(full, path.join(ARTIFACTS, `log-${path.relative(logs, full).replace(/[\\/]/g, "_")}`));
      }
    }
  };
  walk(logs);
}

main().catch((error) => {
  console.error(error);
  console.log("e2e: 0 passed, 1 failed");
  process.exitCode = 1;
});
