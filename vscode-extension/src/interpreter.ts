/**
 * Which Python runs the debug adapter and the `opreplay` command. Pure: no `vscode` import; the
 * inputs (settings, the Python extension's answer, a process runner, a file check) are arguments.
 *
 * Order: the `opreplay.python` setting, else the interpreter selected in the Python extension
 * (ms-python.python's `environments.getActiveEnvironmentPath`), else `python3`.
 */

import * as path from "path";
import { substituteVariables } from "./config";

export type InterpreterSource = "setting" | "python-extension" | "default";

export interface InterpreterInputs {
  /** The `opreplay.python` setting (may be empty or missing). */
  setting?: string;
  /** The Python extension's active environment path, when it is installed and answered. */
  pythonExtensionPath?: string;
  workspaceFolder?: string;
  userHome?: string;
  /** `process.platform`: on Windows the fallback is `python`. */
  platform?: string;
}

export interface InterpreterChoice {
  python: string;
  source: InterpreterSource;
}

export const DEFAULT_PYTHON = "python3";
export const ADAPTER_MODULE = "opreplay_adapter.dap";
export const PROBE_MODULE = "opreplay_adapter";

function clean(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

export function chooseInterpreter(inputs: InterpreterInputs): InterpreterChoice {
  const setting = clean(inputs.setting);
  if (setting) {
    return {
      python: substituteVariables(setting, { workspaceFolder: inputs.workspaceFolder, userHome: inputs.userHome }),
      source: "setting",
    };
  }
  const fromExtension = clean(inputs.pythonExtensionPath);
  if (fromExtension) {
    return { python: fromExtension, source: "python-extension" };
  }
  return { python: inputs.platform === "win32" ? "python" : DEFAULT_PYTHON, source: "default" };
}

export interface Command {
  command: string;
  args: string[];
}

/** The debug adapter's command line: `<python> -m opreplay_adapter.dap`. */
export function adapterCommand(choice: InterpreterChoice): Command {
  return { command: choice.python, args: ["-m", ADAPTER_MODULE] };
}

/** The check whether opreplay is installed for an interpreter: `<python> -c "import opreplay_adapter"`. */
export function probeCommand(choice: InterpreterChoice): Command {
  return { command: choice.python, args: ["-c", `import ${PROBE_MODULE}`] };
}

/** Shell quoting for a command shown to the user or sent to a terminal. */
export function shellQuote(arg: string, platform: string = process.platform): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) {
    return arg;
  }
  if (platform === "win32") {
    return `"${arg.replace(/"/g, '\\"')}"`;
  }
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function installHint(choice: InterpreterChoice, platform: string = process.platform): string {
  return `${shellQuote(choice.python, platform)} -m pip install opreplay`;
}

export function describeSource(choice: InterpreterChoice): string {
  switch (choice.source) {
    case "setting":
      return 'the "opreplay.python" setting';
    case "python-extension":
      return "the interpreter selected in the Python extension";
    default:
      return `the default "${choice.python}" (set "opreplay.python" to choose another)`;
  }
}

export interface RunResult {
  /** Exit status; null when the process could not start (see `error`). */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the process could not start (e.g. ENOENT). */
  error?: string;
}

export type Runner = (command: string, args: string[]) => Promise<RunResult>;

export type AdapterCheck =
  | { ok: true; command: Command }
  | { ok: false; reason: "no-python" | "not-installed"; message: string; installCommand?: string };

/** Whether `<python>` can run the adapter; when not, a message that says what to do. */
export async function checkAdapter(choice: InterpreterChoice, run: Runner, platform: string = process.platform): Promise<AdapterCheck> {
  const probe = probeCommand(choice);
  let result: RunResult;
  try {
    result = await run(probe.command, probe.args);
  } catch (error) {
    result = { code: null, stdout: "", stderr: "", error: String(error) };
  }
  if (result.code === 0) {
    return { ok: true, command: adapterCommand(choice) };
  }
  if (result.code === null) {
    return {
      ok: false,
      reason: "no-python",
      message:
        `opreplay: cannot run the Python interpreter "${choice.python}" (from ${describeSource(choice)})` +
        (result.error ? `: ${result.error}` : "") +
        '. Set "opreplay.python" to a Python that has opreplay installed.',
    };
  }
  const hint = installHint(choice, platform);
  return {
    ok: false,
    reason: "not-installed",
    message:
      `opreplay is not installed for the Python interpreter "${choice.python}" (from ${describeSource(choice)}). ` +
      `Install it with: ${hint}` +
      ' (or set "opreplay.python" to a Python that has it).',
    installCommand: hint,
  };
}

/**
 * How to run the `opreplay` command with an interpreter: the console script next to it when there
 * is one (a virtualenv's bin/), else the CLI's entry point through `-c` (the package has no
 * `python -m opreplay.cli` entry).
 */
export function cliCommand(choice: InterpreterChoice, args: string[], exists: (file: string) => boolean, platform: string = process.platform): Command {
  const python = choice.python;
  if (path.isAbsolute(python)) {
    const dir = path.dirname(python);
    const script = platform === "win32" ? path.join(dir, "opreplay.exe") : path.join(dir, "opreplay");
    if (exists(script)) {
      return { command: script, args };
    }
  }
  return {
    command: python,
    args: ["-c", "import sys; sys.argv[0] = 'opreplay'; from opreplay.cli import main; sys.exit(main())", ...args],
  };
}
