/**
 * The `opreplay` command as the extension uses it (sessions, info, analyze, timeline). No `vscode`
 * import: the interpreter, the process runner and the file check are given.
 */

import { Command, InterpreterChoice, Runner, cliCommand, describeSource, installHint } from "./interpreter";
import { lastLine } from "./process";
import { SessionDetails, SessionSummary, parseAnalysis, parseInfo, parseSessions } from "./sessions";

export class OpreplayCliError extends Error {
  constructor(
    message: string,
    /** The command does not exist in this opreplay version (an older install). */
    readonly unsupported = false,
  ) {
    super(message);
  }
}

export class OpreplayCli {
  constructor(
    private readonly choice: InterpreterChoice,
    private readonly run: Runner,
    private readonly exists: (file: string) => boolean,
  ) {}

  /** The command line for `opreplay ARGS` (also used to type into a terminal). */
  command(args: string[]): Command {
    return cliCommand(this.choice, args, this.exists);
  }

  async exec(args: string[]): Promise<string> {
    const { command, args: full } = this.command(args);
    const result = await this.run(command, full);
    if (result.code === 0) {
      return result.stdout;
    }
    if (result.code === null) {
      throw new OpreplayCliError(`cannot run ${command}: ${result.error ?? "unknown error"}`);
    }
    const problem = lastLine(result.stderr) || lastLine(result.stdout) || `exit status ${result.code}`;
    if (/No module named .?opreplay/.test(result.stderr)) {
      throw new OpreplayCliError(
        `opreplay is not installed for the Python interpreter "${this.choice.python}" (${describeSource(this.choice)}); install it with: ${installHint(this.choice)}`,
        true,
      );
    }
    if (/No such command/.test(result.stderr)) {
      throw new OpreplayCliError(`opreplay ${args[0]}: ${problem}`, true);
    }
    throw new OpreplayCliError(`opreplay ${args[0]}: ${problem}`);
  }

  async sessions(database: string): Promise<SessionSummary[]> {
    return parseSessions(await this.exec(["sessions", "-d", database, "--json"]));
  }

  async info(database: string, session: string): Promise<SessionDetails> {
    return parseInfo(await this.exec(["info", session, "-d", database, "--json"]));
  }

  async analyze(database: string, session: string): Promise<SessionDetails> {
    return parseAnalysis(await this.exec(["analyze", session, "-d", database, "--json"]));
  }

  /** Write the timeline pages into `directory`; their paths, first page first. */
  async timeline(database: string, session: string, directory: string): Promise<string[]> {
    const out = await this.exec(["timeline", session, "-d", database, "-o", directory]);
    return out
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line.endsWith(".optrace"));
  }
}
