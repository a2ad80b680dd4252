/**
 * Sessions of a recording database as the `opreplay` command reports them (`sessions --json`,
 * `info --json`, `analyze --json`), and how the extension shows them. Pure: no `vscode` import.
 */

export interface SessionSummary {
  id: string;
  name: string | null;
  started_at: number;
  ended_at: number | null;
  operations: number;
  errors: number;
  dropped: number;
  host: string | null;
  pid: number | null;
  command: string | null;
  labels: { [key: string]: string };
}

export class CliOutputError extends Error {}

function isObject(value: unknown): value is { [key: string]: unknown } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function num(value: unknown, fallback = 0): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

function str(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/** Parse `opreplay sessions --json`; newest first whatever order the command printed. */
export function parseSessions(stdout: string): SessionSummary[] {
  let data: unknown;
  try {
    data = JSON.parse(stdout);
  } catch {
    throw new CliOutputError(`"opreplay sessions --json" printed something that is not JSON: ${stdout.slice(0, 200)}`);
  }
  if (!Array.isArray(data)) {
    throw new CliOutputError('"opreplay sessions --json" did not print a list');
  }
  const sessions: SessionSummary[] = [];
  for (const item of data) {
    if (!isObject(item) || typeof item.id !== "string") {
      continue;
    }
    const labels: { [key: string]: string } = {};
    if (isObject(item.labels)) {
      for (const [key, value] of Object.entries(item.labels)) {
        labels[key] = String(value);
      }
    }
    sessions.push({
      id: item.id,
      name: str(item.name),
      started_at: num(item.started_at),
      ended_at: typeof item.ended_at === "number" ? item.ended_at : null,
      operations: num(item.operations),
      errors: num(item.errors),
      dropped: num(item.dropped),
      host: str(item.host),
      pid: typeof item.pid === "number" ? item.pid : null,
      command: str(item.command),
      labels,
    });
  }
  return sessions.sort((a, b) => b.started_at - a.started_at);
}

export function formatCount(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function plural(n: number, one: string, many = one + "s"): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

/** A duration in seconds, short: `850 ms`, `2.7 s`, `4 min 12 s`, `1 h 03 min`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) {
    return "?";
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 3600) {
    const m = Math.floor(seconds / 60);
    return `${m} min ${String(Math.round(seconds - m * 60)).padStart(2, "0")} s`;
  }
  const h = Math.floor(seconds / 3600);
  return `${h} h ${String(Math.floor((seconds - h * 3600) / 60)).padStart(2, "0")} min`;
}

/** `2026-11-26 07:23:46` in local time (what a person remembers of when they recorded). */
export function formatStarted(epochSeconds: number): string {
  const d = new Date(epochSeconds * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function sessionDuration(s: SessionSummary): number | null {
  return s.ended_at !== null ? Math.max(0, s.ended_at - s.started_at) : null;
}

/** `179 operations, 14 errors, 2.7 s` (and `still recording` / dropped when so). */
export function sessionDescription(s: SessionSummary): string {
  const parts = [plural(s.operations, "operation"), plural(s.errors, "error")];
  const duration = sessionDuration(s);
  parts.push(duration === null ? "still recording" : formatDuration(duration));
  if (s.dropped > 0) {
    parts.push(`${formatCount(s.dropped)} dropped`);
  }
  return parts.join(", ");
}

export function sessionLabel(s: SessionSummary): string {
  return s.name ? `${s.name} (${s.id})` : s.id;
}

export interface SessionPickItem {
  label: string;
  description: string;
  detail: string;
  sessionId: string;
}

/** The session picker's items, newest first; the first one is `latest`. */
export function sessionPickItems(sessions: SessionSummary[]): SessionPickItem[] {
  return [...sessions]
    .sort((a, b) => b.started_at - a.started_at)
    .map((s, index) => {
      const details = [`started ${formatStarted(s.started_at)}`];
      if (s.host) {
        details.push(`on ${s.host}`);
      }
      if (s.command) {
        details.push(s.command);
      }
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${v}`);
      if (labels.length) {
        details.push(labels.join(" "));
      }
      return {
        label: sessionLabel(s) + (index === 0 ? "  (latest)" : ""),
        description: sessionDescription(s),
        detail: details.join("  ·  "),
        sessionId: s.id,
      };
    });
}

/** The parts of `opreplay info --json` and `analyze --json` the Recordings view shows. */
export interface SessionDetails {
  duration_s?: number;
  statuses?: { [status: string]: number };
  kinds?: { [kind: string]: number };
  loops?: number;
  slow?: number;
  errorGroups?: number;
}

export function parseInfo(stdout: string): SessionDetails {
  const data: unknown = JSON.parse(stdout);
  if (!isObject(data)) {
    throw new CliOutputError('"opreplay info --json" did not print an object');
  }
  const details: SessionDetails = {};
  if (typeof data.duration_s === "number") {
    details.duration_s = data.duration_s;
  }
  for (const key of ["statuses", "kinds"] as const) {
    const value = data[key];
    if (isObject(value)) {
      const counts: { [k: string]: number } = {};
      for (const [k, v] of Object.entries(value)) {
        counts[k] = num(v);
      }
      details[key] = counts;
    }
  }
  return details;
}

export function parseAnalysis(stdout: string): SessionDetails {
  const data: unknown = JSON.parse(stdout);
  if (!isObject(data)) {
    throw new CliOutputError('"opreplay analyze --json" did not print an object');
  }
  const length = (value: unknown): number => (Array.isArray(value) ? value.length : 0);
  const details: SessionDetails = {};
  // loops: {hot: [...], ping_pong: [...], periodic: [...]} (older shapes: a plain list)
  if (Array.isArray(data.loops)) {
    details.loops = data.loops.length;
  } else if (isObject(data.loops)) {
    details.loops = length(data.loops.hot) + length(data.loops.ping_pong);
  }
  // slow: {threshold_ms, count, operations: [...]}
  if (isObject(data.slow)) {
    details.slow = typeof data.slow.count === "number" ? data.slow.count : length(data.slow.operations);
  }
  // errors: {total, by_status, groups: [...], storms: [...]}
  if (isObject(data.errors)) {
    details.errorGroups = length(data.errors.groups);
    if (isObject(data.errors.by_status)) {
      const counts: { [k: string]: number } = {};
      for (const [k, v] of Object.entries(data.errors.by_status)) {
        counts[k] = num(v);
      }
      details.statuses = counts;
    }
  }
  return details;
}

/** Lines of the summary under a session in the Recordings view. */
export function summaryLines(s: SessionSummary, info?: SessionDetails, analysis?: SessionDetails): string[] {
  const lines: string[] = [];
  const duration = sessionDuration(s) ?? info?.duration_s;
  lines.push(`${plural(s.operations, "operation")}` + (duration !== null && duration !== undefined ? ` in ${formatDuration(duration)}` : ""));
  const statuses = info?.statuses ?? analysis?.statuses;
  if (statuses) {
    const errors = Object.entries(statuses)
      .filter(([status]) => status === "0" || Number(status) >= 400)
      .sort((a, b) => b[1] - a[1])
      .map(([status, n]) => `${status === "0" ? "transport" : status} ×${formatCount(n)}`);
    lines.push(errors.length ? `errors: ${errors.join(", ")}` : "no errors");
  } else {
    lines.push(s.errors ? plural(s.errors, "error") : "no errors");
  }
  if (analysis?.loops !== undefined) {
    lines.push(analysis.loops ? plural(analysis.loops, "hot loop") : "no hot loops");
  }
  if (analysis?.slow !== undefined && analysis.slow > 0) {
    lines.push(plural(analysis.slow, "slow call"));
  }
  if (s.dropped > 0) {
    lines.push(`${formatCount(s.dropped)} operations dropped while recording`);
  }
  return lines;
}
