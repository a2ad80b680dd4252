/**
 * Launch configurations of the `opreplay` debugger: the arguments the adapter takes, and their
 * resolution. Pure: no `vscode` import, every input is an argument (unit-tested on plain Node).
 *
 * VS Code resolves a launch in three steps, and so does this module:
 *   1. `resolveLaunchConfiguration` (before variables are substituted): fill in what is missing:
 *      type/request/name for an empty configuration (F5 without a launch.json), the database from
 *      the `opreplay.database` setting, session `latest`. No database anywhere: ask (a file picker).
 *   2. VS Code substitutes `${workspaceFolder}`, `${command:opreplay.pickSession}`, ...
 *   3. `checkLaunchConfiguration` (after substitution): the types of the arguments and the
 *      database's existence, each refused with a message that says what to change.
 */

import * as path from "path";

export const DEBUG_TYPE = "opreplay";

/** The launch arguments of `opreplay-dap`; mirrors `contributes.debuggers[0].configurationAttributes.launch`. */
export interface OpreplayLaunchArguments {
  type: typeof DEBUG_TYPE;
  request: "launch";
  name: string;
  /** A SQLite file (relative: against `cwd` when given) or a database URL. */
  database?: string;
  /** A session id, a session name, or `latest` (the default). */
  session?: string;
  /** Stop at the first operation (default true). */
  stopOnEntry?: boolean;
  /** Slow-call threshold in milliseconds (default 500). */
  slowThresholdMs?: number;
  /** Hot loop window in operations (default 50). */
  loopWindow?: number;
  /** Folder for the timeline documents. */
  timelineDir?: string;
  /** Folder against which a relative `database` is taken. */
  cwd?: string;
}

/** The adapter's own launch arguments: the interface's keys less the standard type/request/name. */
export type LaunchAttribute = Exclude<keyof OpreplayLaunchArguments, "type" | "request" | "name">;

/**
 * The JSON schema type of each launch argument. A `Record` over the interface's keys, so the
 * compiler refuses an interface field without an entry here; the unit tests compare this table
 * with `configurationAttributes.launch` in package.json: interface, table and schema agree.
 */
export const LAUNCH_ATTRIBUTE_TYPES: Record<LaunchAttribute, "string" | "boolean" | "number" | "integer"> = {
  database: "string",
  session: "string",
  stopOnEntry: "boolean",
  slowThresholdMs: "number",
  loopWindow: "integer",
  timelineDir: "string",
  cwd: "string",
};

/** The adapter's launch arguments (the keys of `configurationAttributes.launch.properties`). */
export const LAUNCH_ATTRIBUTES = Object.keys(LAUNCH_ATTRIBUTE_TYPES) as LaunchAttribute[];

/** The adapter's defaults; the schema's `default`s agree (checked by the unit tests). */
export const LAUNCH_DEFAULTS = {
  session: "latest",
  stopOnEntry: true,
  slowThresholdMs: 100,
  loopWindow: 100,
} as const;

export const DEFAULT_NAME = "Replay the latest session";

export const NO_DATABASE_MESSAGE =
  'opreplay: no recording database to replay. Set "database" in the launch configuration ' +
  '(e.g. "${workspaceFolder}/recordings.db") or the "opreplay.database" setting, ' +
  "or record one with the command \"opreplay: Record Operator...\".";

/** A debug configuration as VS Code hands it over: anything may be missing or of the wrong type. */
export type RawConfiguration = { [key: string]: unknown };

export type Resolution =
  | { kind: "ok"; config: OpreplayLaunchArguments & RawConfiguration }
  | { kind: "needDatabase"; config: OpreplayLaunchArguments & RawConfiguration }
  | { kind: "error"; message: string };

export interface ResolveContext {
  /** The `opreplay.database` setting of the folder (may be empty). */
  settingDatabase?: string;
  /** The workspace folder the configuration belongs to, when there is one. */
  workspaceFolder?: string;
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value.trim() !== "";
}

/** Step 1, before variable substitution. Never throws. */
export function resolveLaunchConfiguration(raw: RawConfiguration | undefined, ctx: ResolveContext = {}): Resolution {
  const config: RawConfiguration = { ...(raw ?? {}) };
  const empty = !config.type && !config.request && !config.name;
  if (empty) {
    config.type = DEBUG_TYPE;
    config.request = "launch";
    config.name = DEFAULT_NAME;
  }
  if (config.type !== undefined && config.type !== DEBUG_TYPE) {
    return { kind: "error", message: `opreplay: not an opreplay configuration (type ${JSON.stringify(config.type)}).` };
  }
  config.type = DEBUG_TYPE;
  if (config.request === undefined) {
    config.request = "launch";
  }
  if (config.request !== "launch") {
    return {
      kind: "error",
      message: `opreplay: "request" must be "launch" (a recording is replayed, not attached to); got ${JSON.stringify(config.request)}.`,
    };
  }
  if (!nonEmptyString(config.name)) {
    config.name = DEFAULT_NAME;
  }
  if (config.session === undefined || config.session === null || config.session === "") {
    config.session = LAUNCH_DEFAULTS.session;
  }
  const typed = config as OpreplayLaunchArguments & RawConfiguration;
  if (config.database === undefined || config.database === null || config.database === "") {
    if (nonEmptyString(ctx.settingDatabase)) {
      const setting = ctx.settingDatabase.trim();
      typed.database =
        ctx.workspaceFolder && !isDatabaseUrl(setting) && !path.isAbsolute(setting) && !setting.startsWith("${")
          ? path.join(ctx.workspaceFolder, setting)
          : setting;
    } else {
      return { kind: "needDatabase", config: typed };
    }
  }
  return { kind: "ok", config: typed };
}

/** A database URL (postgresql://..., sqlite:///...) rather than a file path. */
export function isDatabaseUrl(database: string): boolean {
  return /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(database);
}

/** Where a file database lives: relative paths are taken against `cwd`, else the workspace folder. */
export function databasePath(database: string, cwd?: string, workspaceFolder?: string): string {
  if (isDatabaseUrl(database) || path.isAbsolute(database)) {
    return database;
  }
  const base = cwd && cwd.trim() !== "" ? cwd : workspaceFolder;
  return base ? path.resolve(base, database) : path.resolve(database);
}

export interface CheckContext {
  workspaceFolder?: string;
  /** Whether a file exists (injected: `fs.existsSync` in the extension, a fake in tests). */
  exists: (file: string) => boolean;
}

/** Step 3, after variable substitution: refuse what the adapter would refuse, with a clearer message. */
export function checkLaunchConfiguration(raw: RawConfiguration, ctx: CheckContext): Resolution {
  const config = raw as OpreplayLaunchArguments & RawConfiguration;
  const problems: string[] = [];
  if (!nonEmptyString(config.database)) {
    return { kind: "error", message: NO_DATABASE_MESSAGE };
  }
  if (config.session !== undefined && !nonEmptyString(config.session)) {
    problems.push('"session" must be a session id, a session name or "latest"');
  }
  if (config.stopOnEntry !== undefined && typeof config.stopOnEntry !== "boolean") {
    problems.push('"stopOnEntry" must be true or false');
  }
  if (
    config.slowThresholdMs !== undefined &&
    (typeof config.slowThresholdMs !== "number" || !Number.isFinite(config.slowThresholdMs) || config.slowThresholdMs < 0)
  ) {
    problems.push('"slowThresholdMs" must be a number of milliseconds, 0 or more');
  }
  if (
    config.loopWindow !== undefined &&
    (typeof config.loopWindow !== "number" || !Number.isInteger(config.loopWindow) || config.loopWindow < 2)
  ) {
    problems.push('"loopWindow" must be a whole number of operations, 2 or more');
  }
  if (config.timelineDir !== undefined && !nonEmptyString(config.timelineDir)) {
    problems.push('"timelineDir" must be a folder path');
  }
  if (config.cwd !== undefined && !nonEmptyString(config.cwd)) {
    problems.push('"cwd" must be a folder path');
  }
  if (problems.length) {
    return { kind: "error", message: `opreplay: invalid launch configuration "${config.name}": ${problems.join("; ")}.` };
  }
  if (config.database.includes("${")) {
    return { kind: "error", message: `opreplay: the database path still holds an unresolved variable: ${config.database}` };
  }
  if (!isDatabaseUrl(config.database)) {
    const file = databasePath(config.database, config.cwd, ctx.workspaceFolder);
    if (!ctx.exists(file)) {
      return {
        kind: "error",
        message: `opreplay: the recording database ${file} does not exist. Record one with "opreplay record -d ${file} -- python my_operator.py", or fix "database" in the launch configuration.`,
      };
    }
  }
  return { kind: "ok", config };
}

/** One configuration per recording database found in the workspace (the dynamic provider). */
export function configurationForDatabase(databaseFile: string, workspaceFolder?: string): OpreplayLaunchArguments {
  const relative = workspaceFolder ? path.relative(workspaceFolder, databaseFile) : "";
  const inside = workspaceFolder && relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative);
  const shown = inside ? relative.split(path.sep).join("/") : databaseFile;
  return {
    type: DEBUG_TYPE,
    request: "launch",
    name: `Replay the latest session of ${shown}`,
    database: inside ? "${workspaceFolder}/" + shown : databaseFile,
    session: LAUNCH_DEFAULTS.session,
    stopOnEntry: true,
  };
}

/** Substitute the few variables the extension meets before VS Code does (the session picker's argument). */
export function substituteVariables(text: string, vars: { workspaceFolder?: string; userHome?: string }): string {
  let out = text;
  if (vars.workspaceFolder !== undefined) {
    out = out.split("${workspaceFolder}").join(vars.workspaceFolder);
  }
  if (vars.userHome !== undefined) {
    out = out.split("${userHome}").join(vars.userHome);
    if (out === "~" || out.startsWith("~/")) {
      out = vars.userHome + out.slice(1);
    }
  }
  return out;
}
