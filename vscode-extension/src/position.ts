/**
 * The replay position shown in the status bar: `op 1,204 / 87,311 - 06:00:01.123`.
 * Pure: no `vscode` import.
 *
 * Sources, best first: the adapter's custom event `opreplay/position` (body {seq, total, time}),
 * else the top stack frame's timeline line (seq and time are its first two columns, the total is in
 * the page header: `# session: ID  started: ...  operations: N`).
 */

export interface ReplayPosition {
  seq: number;
  total?: number;
  /** `HH:MM:SS.mmm` (UTC, as in the timeline). */
  time?: string;
}

export const POSITION_EVENT = "opreplay/position";

/** `HH:MM:SS.mmm` UTC of an epoch time in seconds (the timeline's format). */
export function formatClock(epochSeconds: number): string {
  const millis = Math.round(epochSeconds * 1000);
  const dayMillis = ((millis % 86_400_000) + 86_400_000) % 86_400_000;
  const h = Math.floor(dayMillis / 3_600_000);
  const m = Math.floor((dayMillis % 3_600_000) / 60_000);
  const s = Math.floor((dayMillis % 60_000) / 1000);
  const ms = dayMillis % 1000;
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(h)}:${p(m)}:${p(s)}.${p(ms, 3)}`;
}

/** Read the body of an `opreplay/position` event; undefined when it is not one. */
export function positionFromEvent(body: unknown): ReplayPosition | undefined {
  if (typeof body !== "object" || body === null) {
    return undefined;
  }
  const b = body as { [key: string]: unknown };
  if (typeof b.seq !== "number" || !Number.isFinite(b.seq)) {
    return undefined;
  }
  const position: ReplayPosition = { seq: b.seq };
  if (typeof b.total === "number" && Number.isFinite(b.total)) {
    position.total = b.total;
  }
  if (typeof b.time === "string" && b.time !== "") {
    position.time = /^\d{2}:\d{2}:\d{2}(\.\d+)?$/.test(b.time) ? b.time : clockOfIso(b.time) ?? b.time;
  } else if (typeof b.time === "number" && Number.isFinite(b.time)) {
    position.time = formatClock(b.time);
  }
  return position;
}

function clockOfIso(text: string): string | undefined {
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : formatClock(ms / 1000);
}

export function formatPosition(position: ReplayPosition): string {
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  let text = `op ${fmt(position.seq)}`;
  if (position.total !== undefined) {
    text += ` / ${fmt(position.total)}`;
  }
  if (position.time) {
    text += ` - ${position.time}`;
  }
  return text;
}

const LINE = /^\s*(\d+)\s+(\d{2}:\d{2}:\d{2}\.\d{3})\s/;
const TOTAL = /^#\s*session:.*\boperations:\s*([\d,]+)/m;

/** The position of a timeline line (`    1204  06:00:01.123  PATCH ...`); the header gives the total. */
export function positionFromTimeline(line: string, header?: string): ReplayPosition | undefined {
  const match = LINE.exec(line);
  if (!match) {
    return undefined;
  }
  const position: ReplayPosition = { seq: Number(match[1]), time: match[2] };
  const total = header ? TOTAL.exec(header) : null;
  if (total) {
    position.total = Number(total[1].replace(/,/g, ""));
  }
  return position;
}
