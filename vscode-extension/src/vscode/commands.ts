/** The extension's commands: pick a session, record, open a timeline, replay and analyze from the view. */

import * as path from "path";
import * as vscode from "vscode";
import { DEBUG_TYPE, NO_DATABASE_MESSAGE, isDatabaseUrl } from "../config";
import { shellQuote } from "../interpreter";
import { sessionLabel, sessionPickItems } from "../sessions";
import { DatabaseNode, RecordingNode, RecordingsProvider, SessionNode, errorText } from "./recordings";
import { Services } from "./services";

interface Target {
  database: string;
  folder?: vscode.WorkspaceFolder;
  session?: string;
  label?: string;
}

function activeFolder(): vscode.WorkspaceFolder | undefined {
  const editor = vscode.window.activeTextEditor;
  const fromEditor = editor ? vscode.workspace.getWorkspaceFolder(editor.document.uri) : undefined;
  return fromEditor ?? vscode.workspace.workspaceFolders?.[0];
}

export function registerCommands(context: vscode.ExtensionContext, services: Services, recordings: RecordingsProvider): void {
  /** The database of a command: given, the active opreplay session's, the setting, the only one found, or asked. */
  async function chooseDatabase(folder: vscode.WorkspaceFolder | undefined, given?: unknown): Promise<string | undefined> {
    if (typeof given === "string" && given.trim()) {
      return services.resolveDatabase(given, folder);
    }
    const active = vscode.debug.activeDebugSession;
    if (active?.type === DEBUG_TYPE && typeof active.configuration.database === "string") {
      return services.resolveDatabase(active.configuration.database, active.workspaceFolder, active.configuration.cwd);
    }
    const setting = vscode.workspace.getConfiguration("opreplay", folder?.uri).get<string>("database")?.trim();
    if (setting) {
      return services.resolveDatabase(setting, folder);
    }
    const found = await services.findDatabases(folder);
    if (found.length === 1) {
      return found[0].fsPath;
    }
    if (found.length > 1) {
      const picked = await vscode.window.showQuickPick(
        found.map((uri) => ({ label: services.displayPath(uri.fsPath), file: uri.fsPath })),
        { title: "opreplay: recording database", placeHolder: "Which recording database?" },
      );
      return picked?.file;
    }
    const opened = await vscode.window.showOpenDialog({
      title: "opreplay: the recording database",
      canSelectMany: false,
      defaultUri: folder?.uri,
      filters: { "Recording databases": ["db", "sqlite", "sqlite3"], "All files": ["*"] },
    });
    return opened?.[0]?.fsPath;
  }

  /** A QuickPick of the database's sessions, newest first; resolves to the session id. */
  async function pickSession(database: string, folder: vscode.WorkspaceFolder | undefined): Promise<string | undefined> {
    const quickPick = vscode.window.createQuickPick<vscode.QuickPickItem & { sessionId: string }>();
    quickPick.title = `opreplay: replay a session of ${isDatabaseUrl(database) ? database : services.displayPath(database)}`;
    quickPick.placeholder = "Loading sessions...";
    quickPick.busy = true;
    quickPick.matchOnDescription = true;
    quickPick.matchOnDetail = true;
    quickPick.show();
    const result = new Promise<string | undefined>((resolve) => {
      quickPick.onDidAccept(() => {
        resolve(quickPick.selectedItems[0]?.sessionId);
        quickPick.hide();
      });
      quickPick.onDidHide(() => resolve(undefined));
    });
    try {
      const cli = await services.cli(folder);
      const sessions = await cli.sessions(database);
      quickPick.items = sessionPickItems(sessions);
      quickPick.placeholder = sessions.length ? "Which session? (newest first)" : "No session recorded in this database";
    } catch (error) {
      quickPick.hide();
      void vscode.window.showErrorMessage(`opreplay: cannot list the sessions: ${errorText(error)}`);
    } finally {
      quickPick.busy = false;
    }
    const picked = await result;
    quickPick.dispose();
    return picked;
  }

  async function targetOf(node: RecordingNode | undefined, askSession: boolean): Promise<Target | undefined> {
    if (node instanceof SessionNode) {
      return { database: node.database.file, folder: node.database.folder, session: node.session.id, label: sessionLabel(node.session) };
    }
    if (node instanceof DatabaseNode) {
      return { database: node.file, folder: node.folder, session: askSession ? await pickSession(node.file, node.folder) : "latest" };
    }
    const active = vscode.debug.activeDebugSession;
    if (active?.type === DEBUG_TYPE && typeof active.configuration.database === "string") {
      return {
        database: services.resolveDatabase(active.configuration.database, active.workspaceFolder, active.configuration.cwd),
        folder: active.workspaceFolder,
        session: typeof active.configuration.session === "string" ? active.configuration.session : "latest",
      };
    }
    const folder = activeFolder();
    const database = await chooseDatabase(folder);
    if (!database) {
      return undefined;
    }
    const session = askSession ? await pickSession(database, folder) : "latest";
    return session ? { database, folder, session } : undefined;
  }

  function runInTerminal(name: string, folder: vscode.WorkspaceFolder | undefined, command: string, args: string[], tail = ""): vscode.Terminal {
    const terminal = vscode.window.createTerminal({ name, cwd: folder?.uri });
    terminal.show();
    terminal.sendText([command, ...args].map((a) => shellQuote(a)).join(" ") + (tail ? ` ${tail}` : ""));
    return terminal;
  }

  context.subscriptions.push(
    // `${command:opreplay.pickSession}` in a launch configuration: VS Code passes the configuration.
    vscode.commands.registerCommand("opreplay.pickSession", async (config?: { database?: unknown; cwd?: unknown }) => {
      const folder = activeFolder();
      let database: string | undefined;
      if (config && typeof config.database === "string" && config.database.trim()) {
        database = services.resolveDatabase(config.database, folder, typeof config.cwd === "string" ? config.cwd : undefined);
      } else {
        database = await chooseDatabase(folder);
      }
      if (!database) {
        void vscode.window.showErrorMessage(NO_DATABASE_MESSAGE);
        return undefined;
      }
      return pickSession(database, folder);
    }),

    vscode.commands.registerCommand("opreplay.record", async () => {
      const folder = activeFolder();
      const commandLine = await vscode.window.showInputBox({
        title: "opreplay: Record Operator",
        prompt: "The command that runs the operator; its Kubernetes API calls are recorded.",
        placeHolder: "python my_operator.py --namespace prod",
        ignoreFocusOut: true,
        validateInput: (value) => (value.trim() ? undefined : "A command line, e.g. python my_operator.py"),
      });
      if (!commandLine?.trim()) {
        return;
      }
      const setting = vscode.workspace.getConfiguration("opreplay", folder?.uri).get<string>("database")?.trim();
      const database = setting
        ? services.resolveDatabase(setting, folder)
        : path.join(folder?.uri.fsPath ?? process.cwd(), "recordings.db");
      const cli = (await services.cli(folder)).command(["record", "-d", database, "--"]);
      const terminal = runInTerminal("opreplay record", folder, cli.command, cli.args, commandLine.trim());
      const closed = vscode.window.onDidCloseTerminal((t) => {
        if (t === terminal) {
          closed.dispose();
          recordings.refresh();
        }
      });
      context.subscriptions.push(closed);
    }),

    vscode.commands.registerCommand("opreplay.openTimeline", async (node?: RecordingNode) => {
      const target = await targetOf(node, false);
      if (!target?.session) {
        return;
      }
      const base =
        (vscode.debug.activeDebugSession?.type === DEBUG_TYPE && typeof vscode.debug.activeDebugSession.configuration.timelineDir === "string"
          ? vscode.debug.activeDebugSession.configuration.timelineDir
          : undefined) ??
        (target.folder ? path.join(target.folder.uri.fsPath, ".opreplay", "timelines") : path.join(context.globalStorageUri.fsPath, "timelines"));
      const directory = path.join(base, target.session.replace(/[^A-Za-z0-9_.-]/g, "_"));
      try {
        const pages = await vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title: `opreplay: writing the timeline of ${target.label ?? target.session}` },
          async () => (await services.cli(target.folder)).timeline(target.database, target.session!, directory),
        );
        if (!pages.length) {
          void vscode.window.showWarningMessage("opreplay: the timeline has no pages (an empty session?).");
          return;
        }
        const document = await vscode.workspace.openTextDocument(vscode.Uri.file(pages[0]));
        await vscode.window.showTextDocument(document, { preview: false });
      } catch (error) {
        void vscode.window.showErrorMessage(`opreplay: cannot write the timeline: ${errorText(error)}`);
      }
    }),

    vscode.commands.registerCommand("opreplay.replaySession", async (node?: RecordingNode) => {
      const target = await targetOf(node, true);
      if (!target?.session) {
        return;
      }
      await vscode.debug.startDebugging(target.folder, {
        type: DEBUG_TYPE,
        request: "launch",
        name: `Replay ${target.label ?? target.session}`,
        database: target.database,
        session: target.session,
        stopOnEntry: true,
      });
    }),

    vscode.commands.registerCommand("opreplay.analyzeSession", async (node?: RecordingNode) => {
      const target = await targetOf(node, true);
      if (!target?.session) {
        return;
      }
      const cli = (await services.cli(target.folder)).command(["analyze", target.session, "-d", target.database]);
      runInTerminal(`opreplay analyze ${target.session}`, target.folder, cli.command, cli.args);
    }),

    vscode.commands.registerCommand("opreplay.refreshRecordings", () => {
      services.forgetChecks();
      recordings.refresh();
    }),
  );
}
