import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import {
  DEFAULT_NAME,
  LAUNCH_ATTRIBUTES,
  LAUNCH_ATTRIBUTE_TYPES,
  LAUNCH_DEFAULTS,
  NO_DATABASE_MESSAGE,
  checkLaunchConfiguration,
  configurationForDatabase,
  databasePath,
  isDatabaseUrl,
  resolveLaunchConfiguration,
  substituteVariables,
} from "../../src/config";

const root = path.resolve(__dirname, "..", "..", "..");
const manifest = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
const debuggerContribution = manifest.contributes.debuggers[0];
const launchSchema = debuggerContribution.configurationAttributes.launch;

describe("package.json contributes the opreplay debugger", () => {
  it("is the type opreplay, labelled for people", () => {
    assert.strictEqual(debuggerContribution.type, "opreplay");
    assert.strictEqual(debuggerContribution.label, "Kubernetes Operator Replay");
  });

  it("has a schema entry, with a description, for every launch argument of the adapter and no other", () => {
    assert.deepStrictEqual(Object.keys(launchSchema.properties).sort(), [...LAUNCH_ATTRIBUTES].sort());
    for (const [name, property] of Object.entries<{ description?: string; type?: string }>(launchSchema.properties)) {
      assert.ok(property.description && property.description.length > 20, `${name} has a description`);
      assert.ok(property.type, `${name} has a type`);
    }
  });

  it("gives every argument the type of the TypeScript interface", () => {
    for (const [name, type] of Object.entries(LAUNCH_ATTRIBUTE_TYPES)) {
      assert.strictEqual(launchSchema.properties[name].type, type, name);
    }
  });

  it("gives the adapter's defaults", () => {
    for (const [name, value] of Object.entries(LAUNCH_DEFAULTS)) {
      assert.deepStrictEqual(launchSchema.properties[name].default, value, name);
    }
    assert.strictEqual(launchSchema.properties.loopWindow.type, "integer");
    assert.strictEqual(launchSchema.properties.slowThresholdMs.type, "number");
  });

  it("offers the two snippets, one with the session picker, and the picker as a variable", () => {
    const labels = debuggerContribution.configurationSnippets.map((s: { label: string }) => s.label);
    assert.ok(labels.some((l: string) => l.endsWith("Replay the latest session")));
    assert.ok(labels.some((l: string) => l.endsWith("Replay a session...")));
    const picker = debuggerContribution.configurationSnippets.find((s: { label: string }) => s.label.endsWith("Replay a session..."));
    assert.match(picker.body.session, /\$\{command:opreplay\.pickSession\}/);
    assert.strictEqual(debuggerContribution.variables.pickSession, "opreplay.pickSession");
    assert.ok(manifest.contributes.commands.some((c: { command: string }) => c.command === "opreplay.pickSession"));
  });

  it("registers the timeline language for breakpoints, with a grammar that parses", () => {
    assert.deepStrictEqual(manifest.contributes.breakpoints, [{ language: "optrace" }]);
    const language = manifest.contributes.languages.find((l: { id: string }) => l.id === "optrace");
    assert.deepStrictEqual(language.extensions, [".optrace"]);
    const grammar = manifest.contributes.grammars.find((g: { language: string }) => g.language === "optrace");
    const parsed = JSON.parse(fs.readFileSync(path.join(root, grammar.path), "utf8"));
    assert.strictEqual(parsed.scopeName, grammar.scopeName);
  });

  it("puts the Recordings view in Run and Debug, with inline Replay and Analyze", () => {
    assert.ok(manifest.contributes.views.debug.some((v: { id: string; name: string }) => v.id === "opreplay.recordings" && v.name === "Recordings"));
    const inline = manifest.contributes.menus["view/item/context"]
      .filter((m: { group: string; when: string }) => m.group.startsWith("inline") && m.when.includes("opreplay.session"))
      .map((m: { command: string }) => m.command);
    assert.ok(inline.includes("opreplay.replaySession"));
    assert.ok(inline.includes("opreplay.analyzeSession"));
  });

  it("has initial configurations that resolve", () => {
    for (const initial of debuggerContribution.initialConfigurations) {
      const r = resolveLaunchConfiguration(initial, {});
      assert.strictEqual(r.kind, "ok");
    }
  });
});

describe("resolveLaunchConfiguration (before variable substitution)", () => {
  it("makes a complete configuration of an empty one (F5 without launch.json), database from the setting", () => {
    const r = resolveLaunchConfiguration({}, { settingDatabase: "recordings.db", workspaceFolder: "/ws" });
    assert.strictEqual(r.kind, "ok");
    assert.deepStrictEqual(r.kind === "ok" && r.config, {
      type: "opreplay",
      request: "launch",
      name: DEFAULT_NAME,
      session: "latest",
      database: path.join("/ws", "recordings.db"),
    });
  });

  it("keeps what is given", () => {
    const given = {
      type: "opreplay",
      request: "launch",
      name: "Mine",
      database: "${workspaceFolder}/demo.db",
      session: "abc123",
      stopOnEntry: false,
      slowThresholdMs: 250,
      loopWindow: 20,
    };
    const r = resolveLaunchConfiguration(given, { settingDatabase: "other.db", workspaceFolder: "/ws" });
    assert.deepStrictEqual(r.kind === "ok" && r.config, given);
  });

  it("does not change its input", () => {
    const given = { type: "opreplay", request: "launch", name: "x" };
    resolveLaunchConfiguration(given, { settingDatabase: "a.db" });
    assert.deepStrictEqual(given, { type: "opreplay", request: "launch", name: "x" });
  });

  it("defaults the session to latest, also when empty", () => {
    const r = resolveLaunchConfiguration({ type: "opreplay", request: "launch", name: "x", database: "a.db", session: "" });
    assert.strictEqual(r.kind === "ok" && r.config.session, "latest");
  });

  it("leaves the session picker variable for VS Code to substitute", () => {
    const r = resolveLaunchConfiguration({ type: "opreplay", request: "launch", name: "x", database: "a.db", session: "${command:opreplay.pickSession}" });
    assert.strictEqual(r.kind === "ok" && r.config.session, "${command:opreplay.pickSession}");
  });

  it("asks for a database when there is none, in the configuration or the setting", () => {
    assert.strictEqual(resolveLaunchConfiguration({ type: "opreplay", request: "launch", name: "x" }, {}).kind, "needDatabase");
    assert.strictEqual(resolveLaunchConfiguration({ type: "opreplay", request: "launch", name: "x" }, { settingDatabase: "  " }).kind, "needDatabase");
  });

  it("keeps a database URL or an absolute path from the setting as it is", () => {
    const url = resolveLaunchConfiguration({}, { settingDatabase: "postgresql://u@h/db", workspaceFolder: "/ws" });
    assert.strictEqual(url.kind === "ok" && url.config.database, "postgresql://u@h/db");
    const abs = resolveLaunchConfiguration({}, { settingDatabase: "/data/r.db", workspaceFolder: "/ws" });
    assert.strictEqual(abs.kind === "ok" && abs.config.database, "/data/r.db");
  });

  it("refuses attach and other debuggers' configurations", () => {
    const attach = resolveLaunchConfiguration({ type: "opreplay", request: "attach", name: "x", database: "a.db" });
    assert.strictEqual(attach.kind, "error");
    assert.match(attach.kind === "error" ? attach.message : "", /"request" must be "launch"/);
    assert.strictEqual(resolveLaunchConfiguration({ type: "python", request: "launch", name: "x" }).kind, "error");
  });
});

describe("checkLaunchConfiguration (after variable substitution)", () => {
  const exists = (files: string[]) => (f: string) => files.includes(f);
  const base = { type: "opreplay", request: "launch", name: "R", session: "latest" };

  it("accepts an existing database, relative to cwd, else to the workspace folder", () => {
    assert.strictEqual(checkLaunchConfiguration({ ...base, database: "/ws/demo.db" }, { exists: exists(["/ws/demo.db"]) }).kind, "ok");
    assert.strictEqual(
      checkLaunchConfiguration({ ...base, database: "demo.db", cwd: "/data" }, { workspaceFolder: "/ws", exists: exists([path.resolve("/data/demo.db")]) }).kind,
      "ok",
    );
    assert.strictEqual(
      checkLaunchConfiguration({ ...base, database: "demo.db" }, { workspaceFolder: "/ws", exists: exists([path.resolve("/ws/demo.db")]) }).kind,
      "ok",
    );
  });

  it("refuses a missing database file with its path and how to make one", () => {
    const r = checkLaunchConfiguration({ ...base, database: "/ws/nope.db" }, { exists: exists([]) });
    assert.strictEqual(r.kind, "error");
    assert.match(r.kind === "error" ? r.message : "", /\/ws\/nope\.db does not exist.*opreplay record/);
  });

  it("refuses no database with the clear message", () => {
    const r = checkLaunchConfiguration({ ...base }, { exists: exists([]) });
    assert.deepStrictEqual(r, { kind: "error", message: NO_DATABASE_MESSAGE });
    assert.match(NO_DATABASE_MESSAGE, /opreplay\.database/);
  });

  it("does not look for a database URL on disk", () => {
    assert.strictEqual(checkLaunchConfiguration({ ...base, database: "postgresql://u@h/rec" }, { exists: exists([]) }).kind, "ok");
  });

  it("names every argument of the wrong type", () => {
    const r = checkLaunchConfiguration(
      { ...base, database: "/a.db", stopOnEntry: "yes", slowThresholdMs: -1, loopWindow: 2.5, session: "" },
      { exists: exists(["/a.db"]) },
    );
    assert.strictEqual(r.kind, "error");
    const message = r.kind === "error" ? r.message : "";
    for (const name of ["stopOnEntry", "slowThresholdMs", "loopWindow", "session"]) {
      assert.ok(message.includes(`"${name}"`), `${name} in ${message}`);
    }
  });

  it("refuses a database that still holds a variable", () => {
    const r = checkLaunchConfiguration({ ...base, database: "${env:NOPE}/a.db" }, { exists: () => true });
    assert.strictEqual(r.kind, "error");
  });
});

describe("helpers", () => {
  it("tells URLs from paths", () => {
    assert.ok(isDatabaseUrl("postgresql://u@h/db"));
    assert.ok(isDatabaseUrl("sqlite:///tmp/x.db"));
    assert.ok(!isDatabaseUrl("/tmp/x.db"));
    assert.ok(!isDatabaseUrl("C:\\x.db"));
  });

  it("places relative databases", () => {
    assert.strictEqual(databasePath("a.db", "/c", "/ws"), path.resolve("/c/a.db"));
    assert.strictEqual(databasePath("a.db", undefined, "/ws"), path.resolve("/ws/a.db"));
    assert.strictEqual(databasePath("/x/a.db", "/c", "/ws"), "/x/a.db");
  });

  it("makes one configuration per database found, relative to the folder", () => {
    assert.deepStrictEqual(configurationForDatabase("/ws/rec/demo.db", "/ws"), {
      type: "opreplay",
      request: "launch",
      name: "Replay the latest session of rec/demo.db",
      database: "${workspaceFolder}/rec/demo.db",
      session: "latest",
      stopOnEntry: true,
    });
    assert.strictEqual(configurationForDatabase("/elsewhere/a.db", "/ws").database, "/elsewhere/a.db");
  });

  it("substitutes workspaceFolder and the home folder", () => {
    assert.strictEqual(substituteVariables("${workspaceFolder}/a.db", { workspaceFolder: "/ws" }), "/ws/a.db");
    assert.strictEqual(substituteVariables("~/venv/bin/python", { userHome: "/home/u" }), "/home/u/venv/bin/python");
    assert.strictEqual(substituteVariables("${userHome}/x", { userHome: "/home/u" }), "/home/u/x");
  });
});
