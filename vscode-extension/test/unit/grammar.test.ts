/** The timeline grammar, tokenized with the TextMate engine VS Code uses (vscode-textmate + oniguruma). */

import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as oniguruma from "vscode-oniguruma";
import * as textmate from "vscode-textmate";

const root = path.resolve(__dirname, "..", "..", "..");

async function loadGrammar(): Promise<textmate.IGrammar> {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns: string[]) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s: string) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName: string) => {
      if (scopeName !== "source.optrace") {
        return null;
      }
      const file = path.join(root, "syntaxes", "optrace.tmLanguage.json");
      return textmate.parseRawGrammar(fs.readFileSync(file, "utf8"), file);
    },
  });
  const grammar = await registry.loadGrammar("source.optrace");
  assert.ok(grammar);
  return grammar;
}

/** Each token's text with its innermost scope. */
function tokens(grammar: textmate.IGrammar, line: string): Array<[string, string]> {
  const result = grammar.tokenizeLine(line, textmate.INITIAL);
  return result.tokens
    .map((t): [string, string] => [line.slice(t.startIndex, t.endIndex), t.scopes[t.scopes.length - 1]])
    .filter(([text]) => text.trim() !== "");
}

function scopeOf(grammar: textmate.IGrammar, line: string, text: string): string {
  const found = tokens(grammar, line).find(([t]) => t === text);
  assert.ok(found, `no token ${JSON.stringify(text)} in ${JSON.stringify(tokens(grammar, line))}`);
  return found[1];
}

describe("timeline grammar (optrace.tmLanguage.json)", () => {
  let grammar: textmate.IGrammar;
  before(async () => {
    grammar = await loadGrammar();
  });

  const conflict =
    "    1204  06:00:01.123  PATCH   apps/v1 Deployment default/web  409 Conflict   12.0ms  [reconcile 17] thread=MainThread";

  it("colours the header as comments", () => {
    assert.deepStrictEqual(tokens(grammar, "# session: ceq75u  operations: 179"), [
      ["# session: ceq75u  operations: 179", "comment.line.number-sign.optrace"],
    ]);
  });

  it("colours seq, time, verb, kind, status and error reason, duration, tags", () => {
    assert.strictEqual(scopeOf(grammar, conflict, "1204"), "constant.numeric.integer.seq.optrace");
    assert.strictEqual(scopeOf(grammar, conflict, "06:00:01.123"), "constant.numeric.time.optrace");
    assert.strictEqual(scopeOf(grammar, conflict, "PATCH"), "keyword.control.verb.write.optrace");
    assert.strictEqual(scopeOf(grammar, conflict, "apps/v1"), "entity.other.attribute-name.api-version.optrace");
    assert.strictEqual(scopeOf(grammar, conflict, "Deployment"), "entity.name.type.kind.optrace");
    assert.strictEqual(scopeOf(grammar, conflict, "default/web"), "string.unquoted.object.optrace");
    assert.strictEqual(scopeOf(grammar, conflict, "409"), "invalid.illegal.status.error.optrace");
    assert.strictEqual(scopeOf(grammar, conflict, "Conflict"), "invalid.illegal.reason.optrace");
    assert.strictEqual(scopeOf(grammar, conflict, "12.0ms"), "constant.numeric.duration.optrace");
    assert.strictEqual(scopeOf(grammar, conflict, "reconcile"), "entity.name.tag.optrace");
    assert.strictEqual(scopeOf(grammar, conflict, "MainThread"), "string.unquoted.thread.optrace");
  });

  it("tells reads, deletes, watch events and successes apart", () => {
    const get = "       8  07:23:46.259  GET     apps/v1 Deployment default/checkout   200   6.8ms  [reconcile 1] thread=MainThread";
    assert.strictEqual(scopeOf(grammar, get, "GET"), "keyword.other.verb.read.optrace");
    assert.strictEqual(scopeOf(grammar, get, "200"), "constant.numeric.status.success.optrace");
    const del = "      30  07:23:46.900  DELETE  v1 ConfigMap default/old   404 NotFound   1.0ms  thread=worker-2";
    assert.strictEqual(scopeOf(grammar, del, "DELETE"), "keyword.control.verb.delete.optrace");
    assert.strictEqual(scopeOf(grammar, del, "NotFound"), "invalid.illegal.reason.optrace");
    const event = "       2  07:23:46.220  EVENT   demo.opreplay.dev/v1 WebApp default/checkout  ADDED   0.000ms  [watch 1] thread=MainThread";
    assert.strictEqual(scopeOf(grammar, event, "EVENT"), "keyword.other.verb.event.optrace");
    assert.strictEqual(scopeOf(grammar, event, "ADDED"), "constant.language.event.optrace");
    const status = "      99  07:23:47.000  PATCH   demo.opreplay.dev/v1 WebApp/status default/a  500 InternalError  1.2s  thread=t";
    assert.strictEqual(scopeOf(grammar, status, "WebApp"), "entity.name.type.kind.optrace");
    assert.strictEqual(scopeOf(grammar, status, "status"), "entity.name.type.subresource.optrace");
    assert.strictEqual(scopeOf(grammar, status, "500"), "invalid.illegal.status.error.optrace");
    assert.strictEqual(scopeOf(grammar, status, "1.2s"), "constant.numeric.duration.optrace");
  });

  it("does not take a number in a thread name for a status", () => {
    const line = "       5  07:23:46.240  GET     v1 Pod default/p   200   4.3ms  thread=worker 404 x";
    assert.strictEqual(scopeOf(grammar, line, "worker 404 x"), "string.unquoted.thread.optrace");
  });
});
