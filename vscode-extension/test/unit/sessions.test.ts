import * as assert from "assert";
import { formatClock, formatPosition, positionFromEvent, positionFromTimeline } from "../../src/position";
import { formatDuration, parseAnalysis, parseInfo, parseSessions, sessionDescription, sessionPickItems, summaryLines } from "../../src/sessions";

const SESSIONS = JSON.stringify([
  {
    id: "529tdx",
    name: "clean",
    started_at: 1795677825.9,
    ended_at: 1795677826.1,
    operations: 22,
    errors: 0,
    dropped: 0,
    host: "vm",
    pid: 1,
    command: "opreplay demo -d demo.db",
    labels: { demo: "true" },
  },
  {
    id: "ceq75u",
    name: "webapp-demo",
    started_at: 1795677826.2,
    ended_at: 1795677828.9,
    operations: 87311,
    errors: 14,
    dropped: 0,
    host: "vm",
    pid: 1,
    command: "opreplay demo -d demo.db",
    labels: {},
  },
  { id: "live01", name: null, started_at: 1795670000, ended_at: null, operations: 1, errors: 1, dropped: 3, host: null, pid: null, command: null, labels: {} },
]);

describe("sessions", () => {
  it("parses `opreplay sessions --json`, newest first", () => {
    const sessions = parseSessions(SESSIONS);
    assert.deepStrictEqual(
      sessions.map((s) => s.id),
      ["ceq75u", "529tdx", "live01"],
    );
    assert.strictEqual(sessions[0].operations, 87311);
  });

  it("refuses output that is not a JSON list, saying so", () => {
    assert.throws(() => parseSessions("Error: not a recording"), /not JSON/);
    assert.throws(() => parseSessions("{}"), /did not print a list/);
  });

  it("describes a session with operations, errors and duration", () => {
    const [demo, clean, live] = parseSessions(SESSIONS);
    assert.strictEqual(sessionDescription(demo), "87,311 operations, 14 errors, 2.7 s");
    assert.strictEqual(sessionDescription(clean), "22 operations, 0 errors, 200 ms");
    assert.strictEqual(sessionDescription(live), "1 operation, 1 error, still recording, 3 dropped");
  });

  it("makes QuickPick items, newest first, the first marked latest", () => {
    const items = sessionPickItems(parseSessions(SESSIONS));
    assert.deepStrictEqual(
      items.map((i) => i.sessionId),
      ["ceq75u", "529tdx", "live01"],
    );
    assert.strictEqual(items[0].label, "webapp-demo (ceq75u)  (latest)");
    assert.strictEqual(items[0].description, "87,311 operations, 14 errors, 2.7 s");
    assert.match(items[1].detail, /started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d.*on vm.*demo=true/);
    assert.strictEqual(items[2].label, "live01");
  });

  it("formats durations", () => {
    assert.strictEqual(formatDuration(0.25), "250 ms");
    assert.strictEqual(formatDuration(12.34), "12.3 s");
    assert.strictEqual(formatDuration(252), "4 min 12 s");
    assert.strictEqual(formatDuration(3780), "1 h 03 min");
  });

  it("summarises info and analyze output for the Recordings view", () => {
    const [demo] = parseSessions(SESSIONS);
    const info = parseInfo(JSON.stringify({ duration_s: 2.65, statuses: { "200": 150, "404": 8, "409": 6 }, kinds: { Deployment: 40 } }));
    const analysis = parseAnalysis(
      JSON.stringify({
        loops: { hot: [{}, {}], ping_pong: [{}], periodic: [{}] },
        slow: { threshold_ms: 100, count: 3, operations: [{}, {}, {}] },
        errors: { total: 14, by_status: { "404": 8, "409": 6 }, groups: [{}, {}] },
        access: {},
        stats: {},
      }),
    );
    assert.deepStrictEqual(analysis, { loops: 3, slow: 3, errorGroups: 2, statuses: { "404": 8, "409": 6 } });
    assert.deepStrictEqual(summaryLines(demo, info, analysis), ["87,311 operations in 2.7 s", "errors: 404 ×8, 409 ×6", "3 hot loops", "3 slow calls"]);
    assert.deepStrictEqual(summaryLines(parseSessions(SESSIONS)[1]), ["22 operations in 200 ms", "no errors"]);
  });
});

describe("replay position", () => {
  it("formats the status bar text", () => {
    assert.strictEqual(formatPosition({ seq: 1204, total: 87311, time: "06:00:01.123" }), "op 1,204 / 87,311 - 06:00:01.123");
    assert.strictEqual(formatPosition({ seq: 3 }), "op 3");
  });

  it("reads the adapter's opreplay/position event, the time as text or epoch seconds", () => {
    assert.deepStrictEqual(positionFromEvent({ seq: 1204, total: 87311, time: "06:00:01.123" }), { seq: 1204, total: 87311, time: "06:00:01.123" });
    assert.deepStrictEqual(positionFromEvent({ seq: 1, total: 2, time: 21601.123 }), { seq: 1, total: 2, time: "06:00:01.123" });
    assert.deepStrictEqual(positionFromEvent({ seq: 1, time: "2026-11-26T06:00:01.123Z" }), { seq: 1, time: "06:00:01.123" });
    assert.strictEqual(positionFromEvent({ total: 2 }), undefined);
    assert.strictEqual(positionFromEvent(null), undefined);
  });

  it("reads a timeline line and its page header", () => {
    const header = [
      "# opreplay timeline v1: one line per operation, line 6 is seq 1",
      "# database: demo.db",
      "# session: ceq75u  started: 2026-11-26 07:23:46.212 UTC  operations: 87311  name: webapp-demo",
    ].join("\n");
    const line = "    1204  06:00:01.123  PATCH   apps/v1 Deployment default/web  409 Conflict   12.0ms  [reconcile 17] thread=MainThread";
    assert.deepStrictEqual(positionFromTimeline(line, header), { seq: 1204, total: 87311, time: "06:00:01.123" });
    assert.strictEqual(positionFromTimeline("# page 1 of 1", header), undefined);
  });

  it("formats a UTC clock", () => {
    assert.strictEqual(formatClock(0), "00:00:00.000");
    assert.strictEqual(formatClock(86399.9994), "23:59:59.999");
  });
});
