/** Running a process and collecting its output (Node only, no VS Code). */

import { spawn } from "child_process";
import type { RunResult } from "./interpreter";

export interface RunOptions {
  cwd?: string;
  /** Milliseconds; the process is killed after it (default 60 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export function runProcess(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let settled = false;
    const finish = (result: RunResult) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(result);
      }
    };
    let child;
    try {
      child = spawn(command, args, {
        cwd: options.cwd,
        env: { ...process.env, PYTHONUNBUFFERED: "1", NO_COLOR: "1", ...options.env },
        stdio: ["ignore", "pipe", "pipe"],
        windowsHide: true,
      });
    } catch (error) {
      resolve({ code: null, stdout, stderr, error: String(error) });
      return;
    }
    const timer = setTimeout(() => {
      child.kill();
      finish({ code: null, stdout, stderr, error: `timed out after ${options.timeoutMs ?? 60_000} ms` });
    }, options.timeoutMs ?? 60_000);
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", (error: NodeJS.ErrnoException) => finish({ code: null, stdout, stderr, error: error.code ?? error.message }));
    child.on("close", (code) => finish({ code: code ?? null, stdout, stderr, error: code === null ? "killed" : undefined }));
  });
}

/** The last meaningful line of a command's stderr (opreplay prints one line per problem). */
export function lastLine(text: string): string {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
  return lines.length ? lines[lines.length - 1] : "";
}
