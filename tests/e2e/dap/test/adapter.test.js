'use strict';
// opreplay-dap driven by @vscode/debugadapter-testsupport's DebugClient, the client VS Code's own
// adapters are tested with, over stdio, against the demo recording (made once in `before`).
// Every message the adapter sends is validated against the official DAP schema (./schema.js);
// a violation fails the test that received it.
//
// Run: cd tests/e2e/dap && npm install && npx mocha
// The adapter runs on $OPREPLAY_PYTHON (default: the project's .venv, ../../../.venv/bin/python);
// the demo is recorded with the `opreplay` command next to it.

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { DebugClient } = require('@vscode/debugadapter-testsupport');
const { watch } = require('./schema');

const PACKAGE_DIR = path.resolve(__dirname, '..');
const PYTHON = path.resolve(PACKAGE_DIR, process.env.OPREPLAY_PYTHON || '../../../.venv/bin/python');
// DebugClient spawns `runtime executable`: a single argument, so `-m opreplay_adapter.dap` is one word.
const ADAPTER = '-mopreplay_adapter.dap';
const HEADER_LINES = 5; // a timeline page's header: seq N of page 1 is on line HEADER_LINES + N

const CAPABILITIES = [
  'supportsConfigurationDoneRequest',
  'supportsStepBack',
  'supportsConditionalBreakpoints',
  'supportsHitConditionalBreakpoints',
  'supportsLogPoints',
  'supportsFunctionBreakpoints',
  'supportsDataBreakpoints',
  'supportsExceptionFilterOptions',
  'supportsExceptionInfoRequest',
  'supportsEvaluateForHovers',
  'supportsClipboardContext',
  'supportsCompletionsRequest',
  'supportsGotoTargetsRequest',
  'supportsRestartRequest',
  'supportsTerminateRequest',
  'supportsBreakpointLocationsRequest',
  'supportsCancelRequest',
  'supportsLoadedSourcesRequest',
  'supportsValueFormattingOptions',
];
const FILTERS = ['error', 'conflict', 'not-found', 'forbidden', 'server-error', 'timeout', 'slow', 'loop'];
const IMAGE = 'spec.template.spec.containers[0].image';

const timeout = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function exitOf(child, ms) {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null) {
      resolve(child.exitCode);
      return;
    }
    const timer = setTimeout(() => reject(new Error(`the adapter still runs ${ms} ms after disconnect`)), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code === null ? signal : code);
    });
  });
}

describe('opreplay-dap', function () {
  this.timeout(30000);
  let database;
  let folder;
  let dc;
  let violations;

  before(function () {
    this.timeout(120000);
    folder = fs.mkdtempSync(path.join(os.tmpdir(), 'opreplay-dap-e2e-'));
    database = path.join(folder, 'demo.db');
    execFileSync(path.join(path.dirname(PYTHON), 'opreplay'), ['demo', '-d', database], { stdio: 'ignore' });
  });

  after(() => fs.rmSync(folder, { recursive: true, force: true }));

  beforeEach(() => {
    dc = new DebugClient(PYTHON, ADAPTER, 'opreplay');
    violations = watch(dc);
    return dc.start();
  });

  // stop() sends disconnect again and waits without a timeout: once the adapter has exited it would hang.
  afterEach(async () => {
    await Promise.race([dc.stop(), timeout(1000)]);
    dc.stopAdapter();
    assert.deepStrictEqual(violations, [], 'the adapter sent messages the DAP schema refuses');
  });

  // -- helpers -------------------------------------------------------------------------------

  // Launch on the demo; `configure` runs between `initialized` and `configurationDone`.
  async function launch(args = {}, configure = async () => {}) {
    const [, , stopped] = await Promise.all([
      dc.waitForEvent('initialized').then(configure).then(() => dc.configurationDoneRequest()),
      dc.launch({ database, timelineDir: path.join(folder, 'pages'), ...args }),
      dc.waitForEvent('stopped'),
    ]);
    return stopped.body;
  }

  // A request that moves the cursor, and the stop it causes.
  async function move(command, args = {}) {
    const [stopped] = await Promise.all([dc.waitForEvent('stopped'), dc.send(command, { threadId: 1, ...args })]);
    return stopped.body;
  }

  async function top() {
    const trace = await dc.stackTraceRequest({ threadId: 1 });
    return trace.body.stackFrames[0];
  }

  async function evaluate(expression, context = 'watch') {
    return (await dc.evaluateRequest({ expression, context, frameId: 1 })).body;
  }

  async function seq() {
    return Number((await evaluate('seq')).result);
  }

  async function scopeVariables(name) {
    const frame = await top();
    const scopes = (await dc.scopesRequest({ frameId: frame.id })).body.scopes;
    const scope = scopes.find((s) => s.name === name);
    return (await dc.variablesRequest({ variablesReference: scope.variablesReference })).body.variables;
  }

  async function child(variables, name) {
    const parent = variables.find((v) => v.name === name);
    return (await dc.variablesRequest({ variablesReference: parent.variablesReference })).body.variables;
  }

  // The lines of the page the top frame shows, and the seq of the first line matching all words.
  async function firstSeqWith(...words) {
    const text = fs.readFileSync((await top()).source.path, 'utf8').split('\n');
    const line = text.findIndex((l) => !l.startsWith('#') && words.every((w) => l.includes(w)));
    assert.ok(line >= 0, `no timeline line has ${words}`);
    return Number(text[line].trim().split(/\s+/)[0]);
  }

  // -- tests ---------------------------------------------------------------------------------

  it('announces its capabilities; initialized follows the launch', async () => {
    const response = await dc.initializeRequest();
    const body = response.body;
    for (const name of CAPABILITIES) {
      assert.strictEqual(body[name], true, name);
    }
    assert.deepStrictEqual(
      body.exceptionBreakpointFilters.map((f) => f.filter),
      FILTERS,
    );
    for (const filter of body.exceptionBreakpointFilters) {
      assert.ok(filter.label && filter.description, filter.filter);
      assert.strictEqual(filter.supportsCondition, true, filter.filter);
    }
    const [initialized] = await Promise.all([dc.waitForEvent('initialized'), dc.launchRequest({ database })]);
    assert.strictEqual(initialized.event, 'initialized');
  });

  it('stops on entry at the first line of the timeline', async () => {
    const stop = await launch({ stopOnEntry: true });
    assert.strictEqual(stop.reason, 'entry');
    assert.strictEqual(stop.allThreadsStopped, true);
    const frame = await top();
    assert.strictEqual(frame.line, HEADER_LINES + 1);
    assert.match(frame.source.path, /\.p0001\.optrace$/);
    assert.match(frame.name, /^WATCH demo\.opreplay\.dev\/v1 WebApp default\/\* -> 200 OK/);
    const threads = (await dc.threadsRequest()).body.threads;
    assert.deepStrictEqual(threads, [{ id: 1, name: 'MainThread' }]);
  });

  it('next three times then stepBack three times shows the same variables', async () => {
    await launch();
    await move('goto', { targetId: 8 });
    const before = [await scopeVariables('Operation'), await scopeVariables('Object')];
    const strip = (vars) => vars.map(({ variablesReference, ...rest }) => rest);
    for (let i = 0; i < 3; i++) {
      assert.strictEqual((await move('next')).reason, 'step');
    }
    assert.strictEqual(await seq(), 11);
    for (let i = 0; i < 3; i++) {
      assert.match((await move('stepBack')).description, /\(backwards\)$/);
    }
    const after = [await scopeVariables('Operation'), await scopeVariables('Object')];
    assert.deepStrictEqual(after.map(strip), before.map(strip));
  });

  it('stops at a conditional function breakpoint', async () => {
    const stop = await launch({ stopOnEntry: false }, async () => {
      const set = await dc.setFunctionBreakpointsRequest({
        breakpoints: [{ name: 'kind == "Deployment" and status == 409' }],
      });
      assert.strictEqual(set.body.breakpoints[0].verified, true);
    });
    assert.strictEqual(stop.reason, 'function breakpoint');
    assert.strictEqual(await seq(), await firstSeqWith('Deployment', '409 Conflict'));
    assert.strictEqual((await top()).line, HEADER_LINES + (await seq()));
  });

  it('the conflict filter stops at the first 409, and reverseContinue returns to the previous hit', async () => {
    const stop = await launch({ stopOnEntry: false }, () =>
      dc.setExceptionBreakpointsRequest({ filters: ['conflict'] }),
    );
    const first = await firstSeqWith('409 Conflict');
    assert.strictEqual(stop.reason, 'exception');
    assert.strictEqual(stop.description, '409 Conflict on Deployment default/checkout');
    assert.strictEqual(await seq(), first);
    const info = (await dc.exceptionInfoRequest({ threadId: 1 })).body;
    assert.strictEqual(info.exceptionId, 'conflict');
    assert.strictEqual(info.details.typeName, 'Conflict');
    await move('continue');
    const second = await seq();
    assert.ok(second > first);
    const back = await move('reverseContinue');
    assert.strictEqual(back.reason, 'exception');
    assert.match(back.description, /\(backwards\)$/);
    assert.strictEqual(await seq(), first);
  });

  it('a data breakpoint stops where the field changed', async () => {
    await launch();
    await move('goto', { targetId: await firstSeqWith('GET', 'Deployment default/checkout') });
    const spec = await child(await scopeVariables('Object'), 'spec');
    const podSpec = await child(await child(spec, 'template'), 'spec');
    const containers = await child(podSpec, 'containers');
    const container = containers.find((v) => v.name === '[0]');
    const info = (await dc.send('dataBreakpointInfo', { variablesReference: container.variablesReference, name: 'image' }))
      .body;
    assert.strictEqual(info.description, `${IMAGE} of Deployment default/checkout`);
    const set = await dc.send('setDataBreakpoints', { breakpoints: [{ dataId: info.dataId, accessType: 'write' }] });
    assert.strictEqual(set.body.breakpoints[0].verified, true);
    const stop = await move('continue');
    assert.strictEqual(stop.reason, 'data breakpoint');
    assert.ok(stop.description.startsWith(`${IMAGE} of Deployment default/checkout: `), stop.description);
    assert.strictEqual(await seq(), await firstSeqWith('UPDATE', 'Deployment default/checkout', ' 200 '));
    const changes = await scopeVariables('Changes');
    assert.ok(changes.some((v) => v.name === IMAGE && v.evaluateName === `obj.${IMAGE}`));
  });

  it('evaluates in the repl, in watches and on hover', async () => {
    await launch();
    await move('goto', { targetId: 8 });
    assert.strictEqual((await evaluate('obj.spec.replicas', 'watch')).result, '2');
    assert.strictEqual((await evaluate('kind', 'hover')).result, '"Deployment"');
    const spec = await evaluate('obj.spec', 'repl');
    assert.ok(spec.variablesReference > 0);
    const children = (await dc.variablesRequest({ variablesReference: spec.variablesReference })).body.variables;
    assert.strictEqual(children.find((v) => v.name === 'replicas').evaluateName, 'obj.spec.replicas');
    await assert.rejects(evaluate('obj.spec.(', 'watch'), /invalid condition/);
    const [stopped, found] = await Promise.all([dc.waitForEvent('stopped'), evaluate(':find status == 404', 'repl')]);
    assert.strictEqual(stopped.body.reason, 'goto');
    assert.match(found.result, /^seq \d+: 404 NotFound on /);
  });

  it('goes to a line with gotoTargets and goto, and restarts at the first operation', async () => {
    await launch();
    const source = (await top()).source;
    const targets = (await dc.send('gotoTargets', { source, line: HEADER_LINES + 42 })).body.targets;
    assert.strictEqual(targets.length, 1);
    const stop = await move('goto', { targetId: targets[0].id });
    assert.strictEqual(stop.reason, 'goto');
    assert.strictEqual(await seq(), 42);
    assert.strictEqual((await top()).line, HEADER_LINES + 42);
    const restarted = await move('restart', {});
    assert.strictEqual(restarted.reason, 'entry');
    assert.strictEqual(await seq(), 1);
  });

  it('exits with status 0 after disconnect', async () => {
    await launch();
    const child = dc._adapterProcess; // DebugClient keeps the child private; its exit is what is tested
    const response = await dc.disconnectRequest();
    assert.strictEqual(response.success, true);
    assert.strictEqual(await exitOf(child, 2000), 0);
  });
});
