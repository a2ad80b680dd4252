/** Debug configuration providers (resolving and dynamic) and the adapter descriptor factory. */

import * as os from "os";
import * as path from "path";
import * as vscode from "vscode";
import {
  DEBUG_TYPE,
  NO_DATABASE_MESSAGE,
  RawConfiguration,
  checkLaunchConfiguration,
  configurationForDatabase,
  resolveLaunchConfiguration,
  substituteVariables,
} from "../config";
import { fileExists } from "../files";
import { Services } from "./services";

/** Fills in what is missing, asks for a database when there is none, refuses what cannot work. */
export class ResolvingConfigurationProvider implements vscode.DebugConfigurationProvider {
  constructor(private readonly services: Services) {}

  /** Creating a launch.json: one configuration per recording database found, else the template. */
  async provideDebugConfigurations(folder: vscode.WorkspaceFolder | undefined, token?: vscode.CancellationToken): Promise<vscode.DebugConfiguration[]> {
    const databases = await this.services.findDatabases(folder, token);
    if (databases.length) {
      return databases.map((uri) => configurationForDatabase(uri.fsPath, folder?.uri.fsPath));
    }
    return [configurationForDatabase(path.join(folder?.uri.fsPath ?? "", "recordings.db"), folder?.uri.fsPath)];
  }

  async resolveDebugConfiguration(
    folder: vscode.WorkspaceFolder | undefined,
    config: vscode.DebugConfiguration,
  ): Promise<vscode.DebugConfiguration | undefined> {
    const settingDatabase = vscode.workspace.getConfiguration("opreplay", folder?.uri).get<string>("database");
    const resolution = resolveLaunchConfiguration(config as RawConfiguration, {
      settingDatabase,
      workspaceFolder: folder?.uri.fsPath,
    });
    if (resolution.kind === "error") {
      void vscode.window.showErrorMessage(resolution.message);
      return undefined;
    }
    if (resolution.kind === "needDatabase") {
      const picked = await vscode.window.showOpenDialog({
        title: "opreplay: the recording database to replay",
        openLabel: "Replay",
        canSelectMany: false,
        defaultUri: folder?.uri,
        filters: { "Recording databases": ["db", "sqlite", "sqlite3"], "All files": ["*"] },
      });
      if (!picked?.length) {
        void vscode.window.showErrorMessage(NO_DATABASE_MESSAGE);
        return undefined;
      }
      resolution.config.database = picked[0].fsPath;
    }
    return resolution.config as vscode.DebugConfiguration;
  }

  async resolveDebugConfigurationWithSubstitutedVariables(
    folder: vscode.WorkspaceFolder | undefined,
    config: vscode.DebugConfiguration,
  ): Promise<vscode.DebugConfiguration | undefined> {
    const checked = checkLaunchConfiguration(config as RawConfiguration, {
      workspaceFolder: folder?.uri.fsPath,
      exists: fileExists,
    });
    if (checked.kind !== "ok") {
      void vscode.window.showErrorMessage(checked.kind === "error" ? checked.message : NO_DATABASE_MESSAGE);
      return undefined;
    }
    const choice = await this.services.interpreter(folder);
    const adapter = await this.services.checkAdapter(choice, folder?.uri.fsPath);
    if (!adapter.ok) {
      void this.services.reportAdapterProblem(adapter, folder);
      return undefined;
    }
    return checked.config as vscode.DebugConfiguration;
  }
}

/** The Run and Debug dropdown's dynamic entries: one per recording database in the workspace. */
export class DynamicConfigurationProvider implements vscode.DebugConfigurationProvider {
  constructor(private readonly services: Services) {}

  async provideDebugConfigurations(folder: vscode.WorkspaceFolder | undefined, token?: vscode.CancellationToken): Promise<vscode.DebugConfiguration[]> {
    const databases = await this.services.findDatabases(folder, token);
    return databases.map((uri) => configurationForDatabase(uri.fsPath, folder?.uri.fsPath));
  }
}

/** Starts `<python> -m opreplay_adapter.dap` with the chosen interpreter. */
export class AdapterDescriptorFactory implements vscode.DebugAdapterDescriptorFactory {
  constructor(private readonly services: Services) {}

  async createDebugAdapterDescriptor(session: vscode.DebugSession): Promise<vscode.DebugAdapterDescriptor> {
    const folder = session.workspaceFolder;
    const choice = await this.services.interpreter(folder);
    const check = await this.services.checkAdapter(choice, folder?.uri.fsPath);
    if (!check.ok) {
      void this.services.reportAdapterProblem(check, folder);
      throw new Error(check.message);
    }
    const args = [...check.command.args];
    const logFile = vscode.workspace.getConfiguration("opreplay", folder?.uri).get<string>("adapterLogFile")?.trim();
    if (logFile) {
      args.push("--log-file", substituteVariables(logFile, { workspaceFolder: folder?.uri.fsPath, userHome: os.homedir() }));
    }
    this.services.log(`starting the adapter: ${check.command.command} ${args.join(" ")}`);
    return new vscode.DebugAdapterExecutable(check.command.command, args, {
      cwd: folder?.uri.fsPath,
      env: { PYTHONUNBUFFERED: "1" },
    });
  }
}

export function registerDebugging(context: vscode.ExtensionContext, services: Services): void {
  context.subscriptions.push(
    vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, new ResolvingConfigurationProvider(services)),
    vscode.debug.registerDebugConfigurationProvider(
      DEBUG_TYPE,
      new DynamicConfigurationProvider(services),
      vscode.DebugConfigurationProviderTriggerKind.Dynamic,
    ),
    vscode.debug.registerDebugAdapterDescriptorFactory(DEBUG_TYPE, new AdapterDescriptorFactory(services)),
  );
}
