/** The opreplay extension: the `opreplay` debugger, the Recordings view, the timeline language. */

import * as vscode from "vscode";
import { registerCommands } from "./vscode/commands";
import { registerDebugging } from "./vscode/debug";
import { RecordingsProvider } from "./vscode/recordings";
import { Services } from "./vscode/services";
import { PositionStatusBar } from "./vscode/statusBar";

export function activate(context: vscode.ExtensionContext): void {
  const services = new Services();
  const recordings = new RecordingsProvider(services);
  context.subscriptions.push(
    services,
    recordings,
    new PositionStatusBar(),
    vscode.window.registerTreeDataProvider("opreplay.recordings", recordings),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("opreplay")) {
        services.forgetChecks();
        recordings.refresh();
      }
    }),
  );
  registerDebugging(context, services);
  registerCommands(context, services, recordings);
  services.log(`activated (VS Code ${vscode.version})`);
}

export function deactivate(): void {}
