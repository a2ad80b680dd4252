'use strict';
// opreplay-dap driven by @vscode/debugadapter-testsupport's DebugClient, the client VS Code's own
// adapters are tested with. For now: the capabilities of `initialize`, and that `disconnect` ends
// the adapter process (VS Code does not kill an adapter that keeps running after it).
//
// Run: cd tests/e2e/dap && npm install && npx mocha
// The adapter runs on $OPREPLAY_PYTHON (default: the project's .venv, ../../../.venv/bin/python).

const assert = require('assert');
const path = require('path');
const { DebugClient } = require('@vscode/debugadapter-testsupport');

const PACKAGE_DIR = path.resolve(__dirname, '..');
const PYTHON = path.resolve(PACKAGE_DIR, process.env.OPREPLAY_PYTHON || '../../../.venv/bin/python');
// DebugClient spawns `runtime executable`: a single argument, so `-m opreplay_adapter.dap` is one word.
const ADAPTER = '-mopreplay_adapter.dap';

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
  this.timeout(15000);
  let dc;

  beforeEach(() => {
    dc = new DebugClient(PYTHON, ADAPTER, 'opreplay');
    return dc.start();
  });

  // stop() sends disconnect again and waits without a timeout: once the adapter has exited it would hang.
  afterEach(() => Promise.race([dc.stop(), timeout(1000)]).then(() => dc.stopAdapter()));

  it('announces its capabilities, then sends initialized', async () => {
    const [response] = await Promise.all([dc.initializeRequest(), dc.waitForEvent('initialized')]);
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
  });

  it('exits with status 0 after disconnect', async () => {
    await Promise.all([dc.initializeRequest(), dc.waitForEvent('initialized')]);
    const child = dc._adapterProcess; // DebugClient keeps the child private; its exit is what is tested
    const response = await dc.disconnectRequest();
    assert.strictEqual(response.success, true);
    assert.strictEqual(await exitOf(child, 1000), 0);
  });
});
