/** What the extension's parts share: the log, the interpreter, the opreplay command, database discovery. */

import * as path from "path";
import * as vscode from "vscode";
import { OpreplayCli } from "../cli";
import { databasePath, isDatabaseUrl, substituteVariables } from "../config";
import { fileExists, hasSqliteHeader } from "../files";
import { AdapterCheck, InterpreterChoice, checkAdapter } from "../interpreter";
import { runProcess } from "../process";
import { interpreterFor } from "./python";

export const DATABASE_GLOB = "**/*.db";
export const DATABASE_EXCLUDE = "**/{node_modules,.git,.venv,venv,.tox,.nox,__pycache__,.opreplay}/**";

export class Services implements vscode.Disposable {
  readonly output = vscode.window.createOutputChannel("opreplay");
  private readonly checks = new Map<string, AdapterCheck>();

  log(line: string): void {
    this.output.appendLine(`[${new Date().toISOString()}] ${line}`);
  }

  interpreter(folder?: vscode.WorkspaceFolder): Promise<InterpreterChoice> {
    return interpreterFor(folder, (line) => this.log(line));
  }

  async cli(folder?: vscode.WorkspaceFolder): Promise<OpreplayCli> {
    const choice = await this.interpreter(folder);
    const cwd = folder?.uri.fsPath;
    return new OpreplayCli(
      choice,
      async (command, args) => {
        this.log(`run: ${command} ${args.map((a) => JSON.stringify(a)).join(" ")}`);
        const result = await runProcess(command, args, { cwd, timeoutMs: 120_000 });
        if (result.code !== 0) {
          this.log(`  exit ${result.code ?? result.error}: ${result.stderr.trim().slice(-500)}`);
        }
        return result;
      },
      fileExists,
    );
  }

  /** Whether the interpreter runs the adapter; a success is remembered, a failure is asked again next time. */
  async checkAdapter(choice: InterpreterChoice, cwd?: string): Promise<AdapterCheck> {
    const cached = this.checks.get(choice.python);
    if (cached?.ok) {
      return cached;
    }
    const check = await checkAdapter(choice, (command, args) => runProcess(command, args, { cwd, timeoutMs: 30_000 }));
    this.log(`adapter check with ${choice.python} (${choice.source}): ${check.ok ? "ok" : check.message}`);
    this.checks.set(choice.python, check);
    return check;
  }

  forgetChecks(): void {
    this.checks.clear();
  }

  /** The notification for an interpreter without opreplay, with what to do about it. */
  async reportAdapterProblem(check: Extract<AdapterCheck, { ok: false }>, folder?: vscode.WorkspaceFolder): Promise<void> {
    const install = "Install in Terminal";
    const settings = "Choose Interpreter";
    const actions = check.installCommand ? [install, settings] : [settings];
    const picked = await vscode.window.showErrorMessage(check.message, ...actions);
    if (picked === install && check.installCommand) {
      const terminal = vscode.window.createTerminal({ name: "opreplay install", cwd: folder?.uri });
      terminal.show();
      terminal.sendText(check.installCommand);
      this.forgetChecks();
    } else if (picked === settings) {
      await vscode.commands.executeCommand("workbench.action.openSettings", "opreplay.python");
      this.forgetChecks();
    }
  }

  /** Recording databases in the workspace: `*.db` files that start with the SQLite header. */
  async findDatabases(folder?: vscode.WorkspaceFolder, token?: vscode.CancellationToken): Promise<vscode.Uri[]> {
    const include = folder ? new vscode.RelativePattern(folder, DATABASE_GLOB) : DATABASE_GLOB;
    const found = await vscode.workspace.findFiles(include, DATABASE_EXCLUDE, 200, token);
    const databases = found.filter((uri) => uri.scheme === "file" && hasSqliteHeader(uri.fsPath));
    for (const setting of this.settingDatabases(folder)) {
      if (!databases.some((uri) => uri.fsPath === setting) && hasSqliteHeader(setting)) {
        databases.push(vscode.Uri.file(setting));
      }
    }
    return databases.sort((a, b) => a.fsPath.localeCompare(b.fsPath));
  }

  private settingDatabases(folder?: vscode.WorkspaceFolder): string[] {
    const folders = folder ? [folder] : vscode.workspace.workspaceFolders ?? [];
    const out: string[] = [];
    for (const f of folders) {
      const value = vscode.workspace.getConfiguration("opreplay", f.uri).get<string>("database")?.trim();
      if (value && !isDatabaseUrl(value)) {
        out.push(databasePath(substituteVariables(value, { workspaceFolder: f.uri.fsPath }), undefined, f.uri.fsPath));
      }
    }
    return out;
  }

  /** A database path or URL from a launch configuration's `database` (variables not yet substituted). */
  resolveDatabase(database: string, folder?: vscode.WorkspaceFolder, cwd?: string): string {
    const vars = { workspaceFolder: folder?.uri.fsPath ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath };
    const substituted = substituteVariables(database, vars);
    return databasePath(substituted, cwd ? substituteVariables(cwd, vars) : undefined, vars.workspaceFolder);
  }

  folderOf(uri: vscode.Uri): vscode.WorkspaceFolder | undefined {
    return vscode.workspace.getWorkspaceFolder(uri);
  }

  displayPath(file: string): string {
    return vscode.workspace.asRelativePath(file, false) || path.basename(file);
  }

  dispose(): void {
    this.output.dispose();
  }
}
