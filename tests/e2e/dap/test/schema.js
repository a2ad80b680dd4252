'use strict';
// Every message the adapter sends, checked against the official DAP schema (Draft 4, with
// ajv-draft-04): `ProtocolMessage` first, then the specific definition (`<Command>Response`,
// `ErrorResponse` when success is false, `<Event>Event`, `Event` for the adapter's own
// `opreplay/...` events). `watch(dc)` hooks a DebugClient's dispatch; `violations` collects what
// failed, and the tests assert it stays empty.

const fs = require('fs');
const path = require('path');
const Ajv = require('ajv-draft-04');

const SCHEMA_PATH = path.resolve(__dirname, '../../../../../shared/dap/debugAdapterProtocol.json');
const CUSTOM_EVENT_PREFIX = 'opreplay/';

const schema = JSON.parse(fs.readFileSync(SCHEMA_PATH, 'utf8'));
// The schema uses `_enum` (suggested values) and other annotations: not keywords, so not strict.
const ajv = new Ajv({ strict: false, allErrors: true });
// The integer widths the schema names: checked, so an id that overflows a client's int32 fails.
const integer = (low, high) => ({ type: 'number', validate: (n) => Number.isInteger(n) && n >= low && n <= high });
ajv.addFormat('int32', integer(-(2 ** 31), 2 ** 31 - 1));
ajv.addFormat('uint32', integer(0, 2 ** 32 - 1));
ajv.addFormat('int64', integer(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER));
ajv.addFormat('uint64', integer(0, Number.MAX_SAFE_INTEGER));
ajv.addSchema(schema, 'dap');
const validators = new Map();

function validatorFor(definition) {
  if (!validators.has(definition)) {
    validators.set(definition, ajv.getSchema(`dap#/definitions/${definition}`));
  }
  return validators.get(definition);
}

function capitalised(name) {
  return typeof name === 'string' ? name.charAt(0).toUpperCase() + name.slice(1) : '';
}

function definitionFor(message) {
  if (message.type === 'response') {
    if (message.success === false) {
      return 'ErrorResponse';
    }
    const name = `${capitalised(message.command)}Response`;
    return schema.definitions[name] ? name : 'Response';
  }
  if (message.type === 'event') {
    if (typeof message.event === 'string' && message.event.startsWith(CUSTOM_EVENT_PREFIX)) {
      return 'Event';
    }
    const name = `${capitalised(message.event)}Event`;
    return schema.definitions[name] ? name : null;
  }
  return null;
}

function check(message) {
  const problems = [];
  for (const definition of ['ProtocolMessage', definitionFor(message)]) {
    if (definition === null) {
      problems.push(`no schema definition for ${message.type} ${message.event || message.command}`);
      continue;
    }
    const validate = validatorFor(definition);
    if (!validate(message)) {
      for (const error of validate.errors) {
        problems.push(`${definition}: ${error.instancePath || '/'} ${error.message}`);
      }
    }
  }
  return problems.map((p) => `${p}\n  in ${JSON.stringify(message).slice(0, 300)}`);
}

// Hook a DebugClient so that every message it receives is validated before it is dispatched.
function watch(dc) {
  const violations = [];
  const dispatch = dc.dispatch.bind(dc);
  let expectedSeq = 1;
  dc.dispatch = (body) => {
    const message = JSON.parse(body);
    if (message.seq !== expectedSeq) {
      violations.push(`seq ${message.seq} where ${expectedSeq} was due`);
    }
    expectedSeq += 1;
    violations.push(...check(message));
    dispatch(body);
  };
  return violations;
}

module.exports = { check, watch };
