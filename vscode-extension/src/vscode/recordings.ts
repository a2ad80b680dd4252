/** The "Recordings" view in Run and Debug: databases, their sessions, a summary of each. */

import * as path from "path";
import * as vscode from "vscode";
import { OpreplayCliError } from "../cli";
import { SessionDetails, SessionSummary, formatStarted, sessionDescription, sessionLabel, summaryLines } from "../sessions";
import { DATABASE_GLOB, Services } from "./services";

export class DatabaseNode {
  readonly kind = "database";
  constructor(
    readonly file: string,
    readonly folder: vscode.WorkspaceFolder | undefined,
  ) {}
}

export class SessionNode {
  readonly kind = "session";
  constructor(
    readonly database: DatabaseNode,
    readonly session: SessionSummary,
    readonly latest: boolean,
  ) {}
}

export class InfoNode {
  readonly kind = "info";
  constructor(
    readonly text: string,
    readonly icon: string,
    readonly tooltip?: string,
  ) {}
}

export type RecordingNode = DatabaseNode | SessionNode | InfoNode;

export class RecordingsProvider implements vscode.TreeDataProvider<RecordingNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<RecordingNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly watcher: vscode.FileSystemWatcher;
  private refreshTimer: NodeJS.Timeout | undefined;

  constructor(private readonly services: Services) {
    this.watcher = vscode.workspace.createFileSystemWatcher(DATABASE_GLOB);
    const soon = () => this.refreshSoon();
    this.watcher.onDidCreate(soon);
    this.watcher.onDidDelete(soon);
    this.watcher.onDidChange(soon);
  }

  refresh(): void {
    this.changed.fire(undefined);
  }

  /** Recording writes the file often: refresh at most every 2 s. */
  private refreshSoon(): void {
    if (!this.refreshTimer) {
      this.refreshTimer = setTimeout(() => {
        this.refreshTimer = undefined;
        this.refresh();
      }, 2000);
    }
  }

  getTreeItem(node: RecordingNode): vscode.TreeItem {
    if (node instanceof DatabaseNode) {
      const item = new vscode.TreeItem(path.basename(node.file), vscode.TreeItemCollapsibleState.Expanded);
      item.description = path.dirname(this.services.displayPath(node.file)) === "." ? undefined : path.dirname(this.services.displayPath(node.file));
      item.tooltip = node.file;
      item.iconPath = new vscode.ThemeIcon("database");
      item.contextValue = "opreplay.database";
      item.resourceUri = vscode.Uri.file(node.file);
      item.id = `db:${node.file}`;
      return item;
    }
    if (node instanceof SessionNode) {
      const s = node.session;
      const item = new vscode.TreeItem(sessionLabel(s) + (node.latest ? " · latest" : ""), vscode.TreeItemCollapsibleState.Collapsed);
      item.description = sessionDescription(s);
      const tooltip = new vscode.MarkdownString();
      tooltip.appendMarkdown(`**${sessionLabel(s)}**\n\n`);
      tooltip.appendMarkdown(`started ${formatStarted(s.started_at)}${s.host ? ` on \`${s.host}\`` : ""}\n\n`);
      if (s.command) {
        tooltip.appendCodeblock(s.command, "shell");
      }
      tooltip.appendMarkdown(`\n${sessionDescription(s)}`);
      item.tooltip = tooltip;
      item.iconPath = new vscode.ThemeIcon(s.errors > 0 ? "warning" : "pass", s.errors > 0 ? new vscode.ThemeColor("list.warningForeground") : undefined);
      item.contextValue = "opreplay.session";
      item.id = `session:${node.database.file}:${s.id}`;
      return item;
    }
    const item = new vscode.TreeItem(node.text, vscode.TreeItemCollapsibleState.None);
    item.iconPath = new vscode.ThemeIcon(node.icon);
    item.tooltip = node.tooltip;
    item.contextValue = "opreplay.info";
    return item;
  }

  async getChildren(node?: RecordingNode): Promise<RecordingNode[]> {
    if (!node) {
      const folders = vscode.workspace.workspaceFolders ?? [];
      const nodes: DatabaseNode[] = [];
      for (const folder of folders.length ? folders : [undefined]) {
        for (const uri of await this.services.findDatabases(folder)) {
          if (!nodes.some((n) => n.file === uri.fsPath)) {
            nodes.push(new DatabaseNode(uri.fsPath, folder));
          }
        }
      }
      return nodes;
    }
    if (node instanceof DatabaseNode) {
      try {
        const cli = await this.services.cli(node.folder);
        const sessions = await cli.sessions(node.file);
        if (!sessions.length) {
          return [new InfoNode("no sessions recorded yet", "info")];
        }
        return sessions.map((s, i) => new SessionNode(node, s, i === 0));
      } catch (error) {
        return [new InfoNode(errorText(error), "error", errorText(error))];
      }
    }
    if (node instanceof SessionNode) {
      const cli = await this.services.cli(node.database.folder);
      const [info, analysis] = await Promise.all([
        cli.info(node.database.file, node.session.id).catch((error) => this.quiet(error)),
        cli.analyze(node.database.file, node.session.id).catch((error) => this.quiet(error)),
      ]);
      const icons = ["symbol-number", "error", "sync", "watch", "warning"];
      return summaryLines(node.session, info, analysis).map((line, i) => {
        const icon = line.startsWith("no ") ? "pass" : icons[Math.min(i, icons.length - 1)];
        return new InfoNode(line, icon);
      });
    }
    return [];
  }

  private quiet(error: unknown): SessionDetails | undefined {
    if (!(error instanceof OpreplayCliError && error.unsupported)) {
      this.services.log(`summary: ${errorText(error)}`);
    }
    return undefined;
  }

  dispose(): void {
    this.watcher.dispose();
    this.changed.dispose();
    if (this.refreshTimer) {
      clearTimeout(this.refreshTimer);
    }
  }
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
