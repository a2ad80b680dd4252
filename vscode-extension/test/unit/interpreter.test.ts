import * as assert from "assert";
import {
  InterpreterChoice,
  RunResult,
  adapterCommand,
  checkAdapter,
  chooseInterpreter,
  cliCommand,
  installHint,
  probeCommand,
  shellQuote,
} from "../../src/interpreter";

describe("chooseInterpreter", () => {
  it("prefers the opreplay.python setting, with variables expanded", () => {
    assert.deepStrictEqual(
      chooseInterpreter({ setting: "${workspaceFolder}/.venv/bin/python", pythonExtensionPath: "/usr/bin/python3.12", workspaceFolder: "/ws" }),
      { python: "/ws/.venv/bin/python", source: "setting" },
    );
    assert.deepStrictEqual(chooseInterpreter({ setting: "~/v/bin/python", userHome: "/home/me" }), {
      python: "/home/me/v/bin/python",
      source: "setting",
    });
  });

  it("then the interpreter selected in the Python extension", () => {
    assert.deepStrictEqual(chooseInterpreter({ setting: "", pythonExtensionPath: "/opt/py/bin/python" }), {
      python: "/opt/py/bin/python",
      source: "python-extension",
    });
    assert.deepStrictEqual(chooseInterpreter({ setting: "   ", pythonExtensionPath: "/opt/py/bin/python" }).source, "python-extension");
  });

  it("else python3 (python on Windows)", () => {
    assert.deepStrictEqual(chooseInterpreter({}), { python: "python3", source: "default" });
    assert.deepStrictEqual(chooseInterpreter({ pythonExtensionPath: "" }), { python: "python3", source: "default" });
    assert.deepStrictEqual(chooseInterpreter({ platform: "win32" }), { python: "python", source: "default" });
  });
});

describe("adapter command and the installation check", () => {
  const venv: InterpreterChoice = { python: "/ws/.venv/bin/python", source: "setting" };
  const fallback: InterpreterChoice = { python: "python3", source: "default" };

  it("runs the adapter module with the interpreter", () => {
    assert.deepStrictEqual(adapterCommand(venv), { command: "/ws/.venv/bin/python", args: ["-m", "opreplay_adapter.dap"] });
    assert.deepStrictEqual(probeCommand(venv), { command: "/ws/.venv/bin/python", args: ["-c", "import opreplay_adapter"] });
  });

  function runner(result: Partial<RunResult>, calls: string[][] = []) {
    return async (command: string, args: string[]): Promise<RunResult> => {
      calls.push([command, ...args]);
      return { code: 0, stdout: "", stderr: "", ...result };
    };
  }

  it("is ok when opreplay_adapter imports", async () => {
    const calls: string[][] = [];
    const check = await checkAdapter(venv, runner({ code: 0 }, calls));
    assert.deepStrictEqual(check, { ok: true, command: adapterCommand(venv) });
    assert.deepStrictEqual(calls, [["/ws/.venv/bin/python", "-c", "import opreplay_adapter"]]);
  });

  it("says how to install opreplay when the import fails", async () => {
    const check = await checkAdapter(fallback, runner({ code: 1, stderr: "ModuleNotFoundError: No module named 'opreplay_adapter'" }), "linux");
    assert.strictEqual(check.ok, false);
    if (!check.ok) {
      assert.strictEqual(check.reason, "not-installed");
      assert.strictEqual(check.installCommand, "python3 -m pip install opreplay");
      assert.match(check.message, /python3 -m pip install opreplay/);
      assert.match(check.message, /opreplay\.python/);
    }
  });

  it("says the interpreter cannot run when it does not exist", async () => {
    const check = await checkAdapter(venv, runner({ code: null, error: "ENOENT" }));
    assert.strictEqual(check.ok, false);
    if (!check.ok) {
      assert.strictEqual(check.reason, "no-python");
      assert.match(check.message, /cannot run the Python interpreter "\/ws\/\.venv\/bin\/python" \(from the "opreplay\.python" setting\): ENOENT/);
    }
    const thrown = await checkAdapter(venv, async () => {
      throw new Error("spawn failed");
    });
    assert.strictEqual(thrown.ok, false);
  });

  it("quotes an interpreter path with spaces in the install hint", () => {
    assert.strictEqual(installHint({ python: "/My Envs/bin/python", source: "setting" }, "linux"), "'/My Envs/bin/python' -m pip install opreplay");
    assert.strictEqual(shellQuote("it's", "linux"), `'it'\\''s'`);
    assert.strictEqual(shellQuote("C:\\Py 3\\python.exe", "win32"), '"C:\\Py 3\\python.exe"');
  });
});

describe("cliCommand", () => {
  it("uses the console script next to the interpreter when there is one", () => {
    const cmd = cliCommand({ python: "/ws/.venv/bin/python", source: "setting" }, ["sessions", "--json"], (f) => f === "/ws/.venv/bin/opreplay", "linux");
    assert.deepStrictEqual(cmd, { command: "/ws/.venv/bin/opreplay", args: ["sessions", "--json"] });
  });

  it("else runs the CLI's entry point through the interpreter", () => {
    const cmd = cliCommand({ python: "python3", source: "default" }, ["sessions", "--json"], () => true, "linux");
    assert.strictEqual(cmd.command, "python3");
    assert.strictEqual(cmd.args[0], "-c");
    assert.match(cmd.args[1], /from opreplay\.cli import main/);
    assert.deepStrictEqual(cmd.args.slice(2), ["sessions", "--json"]);
  });
});
