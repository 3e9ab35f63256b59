#!/usr/bin/env node
// Real-client check: @polkadot/rpc-provider's WsProvider (raw JSON-RPC, no metadata) plus
// @polkadot/types' own Header/Justifications types, against an archive serving Substrate's JSON-RPC.
//
// usage: node polkadot_check.mjs WS_URL EXPECTED_JSON_FILE
//   EXPECTED_JSON_FILE: {"genesis": "0x..", "blocks": [{"number": 5, "hash": "0x.."}, ...]}
//   optional keys, compared exactly when present: "chain", "name", "properties".
// env: POA_CLIENTS_DIR (default ~/.cache/poa-archiver/clients; see install.sh),
//      POA_CHECK_TIMEOUT_MS (whole run, default 120000), POA_RPC_TIMEOUT_MS (per call, default 30000),
//      POA_CONNECT_TIMEOUT_MS (first connection, default 20000).
// stdout: exactly one JSON line, {"ok":true,"checked":N} (N = expected blocks checked) and exit 0,
//         or {"ok":false,"checked":N,"failures":[...]} and exit 1. Details go to stderr.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

// Keep stdout for the summary line only: library logging (console.log) goes to stderr.
const writeOut = (s) => process.stdout.write(s + '\n');
console.log = console.error;

const CLIENTS_DIR = process.env.POA_CLIENTS_DIR || join(homedir(), '.cache', 'poa-archiver', 'clients');
const TOTAL_TIMEOUT_MS = Number(process.env.POA_CHECK_TIMEOUT_MS || 120000);
const RPC_TIMEOUT_MS = Number(process.env.POA_RPC_TIMEOUT_MS || 30000);
const CONNECT_TIMEOUT_MS = Number(process.env.POA_CONNECT_TIMEOUT_MS || 20000);
const UNKNOWN_HASH = '0x' + '11'.repeat(32);
const ZERO_HASH = '0x' + '00'.repeat(32);
const REQUIRED_METHODS = ['chain_getBlock', 'chain_getHeader', 'chain_getBlockHash', 'archive_v1_header'];

const failures = [];
let checked = 0;
let provider = null;
let finished = false;

function fail (msg) {
  failures.push(msg);
  console.error('FAIL: ' + msg);
}

function finish (code) {
  if (finished) return;
  finished = true;
  const summary = failures.length === 0 && code === 0
    ? { ok: true, checked }
    : { ok: false, checked, failures };
  writeOut(JSON.stringify(summary));
  const exit = () => process.exit(summary.ok ? 0 : 1);
  if (provider) {
    // Disconnect, but never let a hung close keep the process alive.
    Promise.race([provider.disconnect().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 2000))])
      .then(exit, exit);
  } else {
    exit();
  }
}

const [url, expectedFile] = process.argv.slice(2);
if (!url || !expectedFile) {
  console.error('usage: node polkadot_check.mjs WS_URL EXPECTED_JSON_FILE');
  process.exit(2);
}

const timer = setTimeout(() => {
  fail(`timed out after ${TOTAL_TIMEOUT_MS} ms`);
  finish(1);
}, TOTAL_TIMEOUT_MS);

// ESM ignores NODE_PATH: resolve the real client packages from the clients dir.
const require = createRequire(join(CLIENTS_DIR, 'noop.js'));
let WsProvider, TypeRegistry, compactFromU8a, hexToU8a, isHex;
try {
  ({ WsProvider } = require('@polkadot/rpc-provider'));
  ({ TypeRegistry } = require('@polkadot/types'));
  ({ compactFromU8a, hexToU8a, isHex } = require('@polkadot/util'));
  // The packages' exports map ./package.json to cjs/package.json (no version): walk up from the entry.
  const ver = (p) => {
    let dir = dirname(require.resolve(p));
    for (;;) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
        if (pkg.name === p) return pkg.version;
      } catch {}
      const up = dirname(dir);
      if (up === dir) return 'unknown';
      dir = up;
    }
  };
  console.error(`clients: @polkadot/api ${ver('@polkadot/api')}, @polkadot/rpc-provider ${ver('@polkadot/rpc-provider')}, ` +
    `@polkadot/types ${ver('@polkadot/types')} from ${CLIENTS_DIR}`);
} catch (e) {
  fail(`cannot load @polkadot packages from ${CLIENTS_DIR} (run tests/clients/install.sh): ${e.message}`);
  finish(1);
}

const registry = TypeRegistry ? new TypeRegistry() : null;

const isHash = (v) => typeof v === 'string' && /^0x[0-9a-f]{64}$/i.test(v);
const isHexStr = (v) => typeof v === 'string' && isHex(v);
const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
// JSON with sorted object keys, for order-independent comparison.
const canonical = (v) => JSON.stringify(v, (_k, x) => isPlainObject(x)
  ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, x[k]]))
  : x);
const show = (v) => {
  const s = JSON.stringify(v);
  return s && s.length > 300 ? s.slice(0, 300) + '…' : s;
};

function eq (what, got, want) {
  if (got !== want) {
    fail(`${what}: got ${show(got)}, want ${show(want)}`);
    return false;
  }
  return true;
}

// Raw JSON-RPC through the real provider. Returns { ok, result } or { ok: false, error }.
async function rpc (method, params) {
  try {
    return { ok: true, result: await provider.send(method, params) };
  } catch (e) {
    return { ok: false, error: e };
  }
}

// A call that must succeed; records a failure and returns undefined otherwise.
async function must (method, params) {
  const r = await rpc(method, params);
  if (!r.ok) {
    fail(`${method}(${show(params)}) returned an error: ${r.error && r.error.message}`);
    return undefined;
  }
  return r.result;
}

function checkHeaderShape (what, h) {
  if (!isPlainObject(h)) {
    fail(`${what}: not a JSON object: ${show(h)}`);
    return false;
  }
  let ok = true;
  for (const k of ['parentHash', 'stateRoot', 'extrinsicsRoot']) {
    if (!isHash(h[k])) { fail(`${what}.${k} is not a 32-byte hex hash: ${show(h[k])}`); ok = false; }
  }
  if (typeof h.number !== 'string' || !/^0x[0-9a-f]+$/i.test(h.number)) {
    fail(`${what}.number is not a hex string: ${show(h.number)}`);
    ok = false;
  }
  if (!isPlainObject(h.digest) || !Array.isArray(h.digest.logs) || !h.digest.logs.every(isHexStr)) {
    fail(`${what}.digest is not {logs:[hex...]}: ${show(h.digest)}`);
    ok = false;
  }
  return ok;
}

const sameHeader = (a, b) =>
  isPlainObject(a) && isPlainObject(b) &&
  ['parentHash', 'number', 'stateRoot', 'extrinsicsRoot'].every((k) => a[k] === b[k]) &&
  isPlainObject(a.digest) && isPlainObject(b.digest) &&
  JSON.stringify(a.digest.logs) === JSON.stringify(b.digest.logs);

function checkExtrinsics (what, exts) {
  if (!Array.isArray(exts)) {
    fail(`${what}: extrinsics is not an array: ${show(exts)}`);
    return;
  }
  exts.forEach((x, i) => {
    if (!isHexStr(x)) {
      fail(`${what}: extrinsic ${i} is not hex: ${show(x)}`);
      return;
    }
    // Each extrinsic is an opaque SCALE Vec<u8>: compact length prefix, then exactly that many bytes.
    const u8a = hexToU8a(x);
    try {
      const [offset, len] = compactFromU8a(u8a);
      eq(`${what}: extrinsic ${i} length prefix vs. payload`, u8a.length - offset, len.toNumber());
    } catch (e) {
      fail(`${what}: extrinsic ${i} has no valid compact length prefix: ${e.message}`);
    }
  });
}

function checkJustifications (what, j) {
  if (j === null) return;
  if (!Array.isArray(j)) {
    fail(`${what}: justifications is neither null nor an array: ${show(j)}`);
    return;
  }
  j.forEach((pair, i) => {
    if (!Array.isArray(pair) || pair.length !== 2) {
      fail(`${what}: justification ${i} is not an [engineId, data] pair: ${show(pair)}`);
      return;
    }
    const [engine, data] = pair;
    const engineOk = (Array.isArray(engine) && engine.length === 4 && engine.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) ||
      (typeof engine === 'string' && /^0x[0-9a-f]{8}$/i.test(engine));
    if (!engineOk) fail(`${what}: justification ${i} engine id is not 4 bytes: ${show(engine)}`);
    const dataOk = isHexStr(data) || (Array.isArray(data) && data.every((b) => Number.isInteger(b) && b >= 0 && b < 256));
    if (!dataOk) fail(`${what}: justification ${i} data is not bytes: ${show(data)}`);
  });
  // The real client decodes this field as Option<Justifications>.
  try {
    const decoded = registry.createType('Option<Justifications>', j);
    eq(`${what}: Option<Justifications> entries`, decoded.isSome ? decoded.unwrap().length : 0, j.length);
  } catch (e) {
    fail(`${what}: polkadot.js cannot decode justifications as Option<Justifications>: ${e.message}`);
  }
}

async function checkBlock (number, hash) {
  const tag = `block #${number} ${hash}`;
  const before = failures.length;

  eq(`${tag}: chain_getBlockHash(${number})`, await must('chain_getBlockHash', [number]), hash);

  const header = await must('chain_getHeader', [hash]);
  if (header === undefined) return false;
  if (!checkHeaderShape(`${tag}: chain_getHeader`, header)) return false;
  eq(`${tag}: chain_getHeader .number`, parseInt(header.number, 16), number);

  // polkadot.js's own Header type: JSON -> SCALE -> BLAKE2b-256 must be the block hash.
  let typedHeader = null;
  try {
    typedHeader = registry.createType('Header', header);
    eq(`${tag}: Header(json).hash`, typedHeader.hash.toHex(), hash);
    eq(`${tag}: Header(json).number`, typedHeader.number.toNumber(), number);
  } catch (e) {
    fail(`${tag}: polkadot.js cannot decode the header JSON: ${e.message}`);
  }

  // Parent linkage.
  if (number === 0) {
    eq(`${tag}: genesis parentHash`, header.parentHash, ZERO_HASH);
  } else {
    eq(`${tag}: parentHash vs chain_getBlockHash(${number - 1})`, header.parentHash,
      await must('chain_getBlockHash', [number - 1]));
  }

  // What api.rpc.chain.getBlock does: runtime version at the parent (at the block itself for genesis).
  const at = number === 0 ? hash : header.parentHash;
  const rv = await must('state_getRuntimeVersion', [at]);
  if (rv !== undefined && (!isPlainObject(rv) || !Number.isInteger(rv.specVersion))) {
    fail(`${tag}: state_getRuntimeVersion(${at}) has no integer specVersion: ${show(rv)}`);
  }

  const signed = await must('chain_getBlock', [hash]);
  if (signed !== undefined) {
    if (!isPlainObject(signed) || !isPlainObject(signed.block)) {
      fail(`${tag}: chain_getBlock is not {block, justifications}: ${show(signed)}`);
    } else {
      if (!sameHeader(signed.block.header, header)) {
        fail(`${tag}: chain_getBlock header differs from chain_getHeader: ${show(signed.block.header)} vs ${show(header)}`);
      }
      try {
        eq(`${tag}: Header(chain_getBlock.block.header).hash`, registry.createType('Header', signed.block.header).hash.toHex(), hash);
      } catch (e) {
        fail(`${tag}: polkadot.js cannot decode chain_getBlock's header: ${e.message}`);
      }
      checkExtrinsics(tag, signed.block.extrinsics);
      if (!('justifications' in signed)) fail(`${tag}: chain_getBlock has no "justifications" key`);
      else checkJustifications(tag, signed.justifications);
    }
  }

  // New-style spec: archive_v1_header returns the SCALE header as hex.
  const scale = await must('archive_v1_header', [hash]);
  if (scale !== undefined) {
    if (!isHexStr(scale)) {
      fail(`${tag}: archive_v1_header is not hex: ${show(scale)}`);
    } else {
      try {
        const fromScale = registry.createType('Header', hexToU8a(scale));
        eq(`${tag}: Header(archive_v1_header).hash`, fromScale.hash.toHex(), hash);
        eq(`${tag}: archive_v1_header re-encoded (no trailing bytes)`, fromScale.toHex(), scale.toLowerCase());
        eq(`${tag}: Header(archive_v1_header).number`, fromScale.number.toNumber(), number);
        if (typedHeader) eq(`${tag}: SCALE of chain_getHeader JSON vs archive_v1_header`, typedHeader.toHex(), scale.toLowerCase());
      } catch (e) {
        fail(`${tag}: polkadot.js cannot decode archive_v1_header's SCALE: ${e.message}`);
      }
    }
  }

  return failures.length === before;
}

async function main () {
  let expected;
  try {
    expected = JSON.parse(readFileSync(expectedFile, 'utf8'));
  } catch (e) {
    fail(`cannot read ${expectedFile}: ${e.message}`);
    return finish(1);
  }
  if (!isHash(expected.genesis) || !Array.isArray(expected.blocks)) {
    fail(`${expectedFile}: expected {"genesis": "0x..", "blocks": [{"number", "hash"}...]}`);
    return finish(1);
  }

  provider = new WsProvider(url, 1000, {}, RPC_TIMEOUT_MS);
  try {
    // WsProvider retries forever on its own; bound the wait for the first connection.
    await Promise.race([
      provider.isReady,
      new Promise((resolve, reject) => setTimeout(() => reject(new Error(`no connection within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS).unref())
    ]);
  } catch (e) {
    fail(`cannot connect to ${url}: ${e.message}`);
    return finish(1);
  }

  // The calls @polkadot/api makes on connect (minus metadata), and its health poll.
  for (const [m, key] of [['system_chain', 'chain'], ['system_name', 'name'], ['system_version', null]]) {
    const v = await must(m, []);
    if (v === undefined) continue;
    if (typeof v !== 'string' || v.length === 0) fail(`${m}: not a non-empty string: ${show(v)}`);
    else if (key && expected[key] !== undefined) eq(m, v, expected[key]);
  }

  const props = await must('system_properties', []);
  if (props !== undefined) {
    if (!isPlainObject(props)) {
      fail(`system_properties: not an object: ${show(props)}`);
    } else {
      if ('ss58Format' in props && !Number.isInteger(props.ss58Format)) fail(`system_properties.ss58Format: ${show(props.ss58Format)}`);
      if ('tokenDecimals' in props && !(Number.isInteger(props.tokenDecimals) || Array.isArray(props.tokenDecimals))) {
        fail(`system_properties.tokenDecimals: ${show(props.tokenDecimals)}`);
      }
      if ('tokenSymbol' in props && !(typeof props.tokenSymbol === 'string' || Array.isArray(props.tokenSymbol))) {
        fail(`system_properties.tokenSymbol: ${show(props.tokenSymbol)}`);
      }
      // The real client turns this into its ChainProperties type.
      try {
        registry.createType('ChainProperties', props);
      } catch (e) {
        fail(`system_properties: polkadot.js cannot decode as ChainProperties: ${e.message}`);
      }
      if (expected.properties !== undefined) eq('system_properties', canonical(props), canonical(expected.properties));
    }
  }

  const health = await must('system_health', []);
  if (health !== undefined && (!isPlainObject(health) || !Number.isInteger(health.peers) ||
      typeof health.isSyncing !== 'boolean' || typeof health.shouldHavePeers !== 'boolean')) {
    fail(`system_health: not {peers, isSyncing, shouldHavePeers}: ${show(health)}`);
  }

  const methods = await must('rpc_methods', []);
  if (methods !== undefined) {
    if (!isPlainObject(methods) || !Array.isArray(methods.methods)) {
      fail(`rpc_methods: not {methods:[...]}: ${show(methods)}`);
    } else {
      for (const m of REQUIRED_METHODS) {
        // @polkadot/api drops every method not listed here from api.rpc.
        if (!methods.methods.includes(m)) fail(`rpc_methods does not list ${m}`);
      }
    }
  }

  eq('chain_getBlockHash(0) vs genesis', await must('chain_getBlockHash', [0]), expected.genesis);

  for (const b of expected.blocks) {
    if (!Number.isInteger(b.number) || !isHash(b.hash)) {
      fail(`${expectedFile}: bad block entry ${show(b)}`);
      continue;
    }
    if (await checkBlock(b.number, b.hash.toLowerCase())) checked++;
  }

  // Unknown block: a JSON-RPC error (the provider rejects), not a null result.
  const unknown = await rpc('chain_getBlock', [UNKNOWN_HASH]);
  if (unknown.ok) fail(`chain_getBlock(${UNKNOWN_HASH}) resolved with ${show(unknown.result)} instead of a JSON-RPC error`);
  else console.error(`chain_getBlock(unknown) rejected as expected: ${unknown.error && unknown.error.message}`);

  clearTimeout(timer);
  finish(failures.length ? 1 : 0);
}

if (!finished) {
  main().catch((e) => {
    fail(`unexpected exception: ${e && e.stack ? e.stack : e}`);
    finish(1);
  });
}
