/** The interpreter for a workspace folder: the setting, the Python extension's choice, or python3. */

import * as os from "os";
import * as vscode from "vscode";
import { InterpreterChoice, chooseInterpreter } from "../interpreter";

interface PythonEnvironmentsApi {
  getActiveEnvironmentPath(resource?: vscode.Uri | vscode.WorkspaceFolder): { id: string; path: string } | undefined;
  resolveEnvironment?(env: { id: string; path: string } | string): Promise<{ executable?: { uri?: vscode.Uri } } | undefined>;
}

/** The Python extension's active interpreter, when it is installed; undefined on any failure. */
async function pythonExtensionInterpreter(folder: vscode.WorkspaceFolder | undefined, log: (line: string) => void): Promise<string | undefined> {
  const extension = vscode.extensions.getExtension("ms-python.python");
  if (!extension) {
    return undefined;
  }
  try {
    const api = (extension.isActive ? extension.exports : await extension.activate()) as
      | { environments?: PythonEnvironmentsApi }
      | undefined;
    const environments = api?.environments;
    const active = environments?.getActiveEnvironmentPath(folder?.uri);
    if (!active?.path) {
      return undefined;
    }
    if (environments?.resolveEnvironment) {
      const resolved = await environments.resolveEnvironment(active);
      const executable = resolved?.executable?.uri?.fsPath;
      if (executable) {
        return executable;
      }
    }
    return active.path;
  } catch (error) {
    log(`the Python extension did not name an interpreter: ${error}`);
    return undefined;
  }
}

export async function interpreterFor(folder: vscode.WorkspaceFolder | undefined, log: (line: string) => void): Promise<InterpreterChoice> {
  const setting = vscode.workspace.getConfiguration("opreplay", folder?.uri).get<string>("python");
  const fromExtension = setting?.trim() ? undefined : await pythonExtensionInterpreter(folder, log);
  return chooseInterpreter({
    setting,
    pythonExtensionPath: fromExtension,
    workspaceFolder: folder?.uri.fsPath,
    userHome: os.homedir(),
    platform: process.platform,
  });
}
