/**
 * The replay position in the status bar while an opreplay session runs:
 * `op 1,204 / 87,311 - 06:00:01.123`. From the adapter's `opreplay/position` event, else from the
 * top stack frame's timeline line (a DAP tracker sees the `stackTrace` responses).
 */

import * as fs from "fs";
import * as vscode from "vscode";
import { DEBUG_TYPE } from "../config";
import { POSITION_EVENT, ReplayPosition, formatPosition, positionFromEvent, positionFromTimeline } from "../position";

interface SessionState {
  position?: ReplayPosition;
  /** Once the adapter sends position events, stack frames are not read for it. */
  hasEvents: boolean;
  running: boolean;
}

export class PositionStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("opreplay.position", vscode.StatusBarAlignment.Left, 50);
  private readonly sessions = new Map<string, SessionState>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor() {
    this.item.name = "opreplay Replay Position";
    this.item.command = "workbench.debug.action.focusCallStackView";
    this.disposables.push(
      vscode.debug.onDidStartDebugSession((session) => {
        if (session.type === DEBUG_TYPE) {
          this.sessions.set(session.id, { hasEvents: false, running: true });
          this.render();
        }
      }),
      vscode.debug.onDidTerminateDebugSession((session) => {
        this.sessions.delete(session.id);
        this.render();
      }),
      vscode.debug.onDidChangeActiveDebugSession(() => this.render()),
      vscode.debug.onDidReceiveDebugSessionCustomEvent((event) => {
        if (event.session.type !== DEBUG_TYPE || event.event !== POSITION_EVENT) {
          return;
        }
        const position = positionFromEvent(event.body);
        if (position) {
          const state = this.state(event.session.id);
          state.hasEvents = true;
          state.position = position;
          this.render();
        }
      }),
      vscode.debug.registerDebugAdapterTrackerFactory(DEBUG_TYPE, {
        createDebugAdapterTracker: (session) => ({
          onDidSendMessage: (message) => this.onMessage(session, message),
        }),
      }),
    );
  }

  private state(id: string): SessionState {
    let state = this.sessions.get(id);
    if (!state) {
      state = { hasEvents: false, running: false };
      this.sessions.set(id, state);
    }
    return state;
  }

  private onMessage(session: vscode.DebugSession, message: { [key: string]: unknown }): void {
    const state = this.state(session.id);
    if (message.type === "event" && message.event === "stopped") {
      state.running = false;
      this.render();
    } else if (message.type === "event" && message.event === "continued") {
      state.running = true;
      this.render();
    } else if (message.type === "response" && message.command === "stackTrace" && message.success && !state.hasEvents) {
      const frames = (message.body as { stackFrames?: Array<{ line?: number; source?: { path?: string } }> } | undefined)?.stackFrames;
      const top = frames?.[0];
      if (top?.source?.path && top.line) {
        const position = readTimelinePosition(top.source.path, top.line);
        if (position) {
          state.position = position;
          this.render();
        }
      }
    }
  }

  private render(): void {
    const active = vscode.debug.activeDebugSession;
    const state = active && active.type === DEBUG_TYPE ? this.sessions.get(active.id) : undefined;
    if (!state) {
      this.item.hide();
      return;
    }
    const position = state.position ? formatPosition(state.position) : "opreplay";
    this.item.text = `$(history) ${position}${state.running ? " $(loading~spin)" : ""}`;
    this.item.tooltip = new vscode.MarkdownString(
      `**opreplay** replay position${state.position?.time ? " (UTC)" : ""}\n\n` +
        "Step over: next operation · Step back: previous operation · Continue / Reverse: next / previous breakpoint",
    );
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
    for (const d of this.disposables) {
      d.dispose();
    }
  }
}

const HEADER_LINES = 5;

const pageCache = new Map<string, { mtimeMs: number; lines: string[] }>();

/** The position at a 1-based line of a timeline file (its header holds the total). */
function readTimelinePosition(file: string, line: number): ReplayPosition | undefined {
  if (!file.endsWith(".optrace")) {
    return undefined;
  }
  try {
    const mtimeMs = fs.statSync(file).mtimeMs;
    let cached = pageCache.get(file);
    if (!cached || cached.mtimeMs !== mtimeMs) {
      cached = { mtimeMs, lines: fs.readFileSync(file, "utf8").split(/\r?\n/) };
      pageCache.set(file, cached);
      if (pageCache.size > 8) {
        pageCache.delete(pageCache.keys().next().value as string);
      }
    }
    return positionFromTimeline(cached.lines[line - 1] ?? "", cached.lines.slice(0, HEADER_LINES).join("\n"));
  } catch {
    return undefined;
  }
}
