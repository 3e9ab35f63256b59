#!/usr/bin/env node
// Real-client check of a chain's history through @polkadot/api's normal entry points:
// ApiPromise.create on WS_URL, then for every transfer recorded by chopsticks_drive.mjs,
// api.rpc.chain.getBlock(hash) must decode the extrinsic at its index (section, method, args and
// signer as submitted), and (await api.at(parent / block)).query.system.account(sender) must
// return the free balance and nonce recorded live. Works against the live peer and against
// anything that serves the same history (an archive gateway).
//
// usage: node history_check.mjs WS_URL EXPECTED_JSON
// env: POA_CLIENTS_DIR (default ~/.cache/poa-archiver/clients; see install.sh),
//      POA_CHECK_TIMEOUT_MS (whole run, default 300000).
// stdout: exactly one JSON line, {"ok":true,"checked":N,"ms":T} (N = transfers that passed every
//         check) and exit 0, or {"ok":false,"checked":N,"failures":[...]} and exit 1 (2: usage).
//         Details go to stderr.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const writeOut = (s) => process.stdout.write(s + '\n');
console.log = console.error;

const CLIENTS_DIR = process.env.POA_CLIENTS_DIR || join(homedir(), '.cache', 'poa-archiver', 'clients');
const TOTAL_TIMEOUT_MS = Number(process.env.POA_CHECK_TIMEOUT_MS || 300000);
// Transfers checked at once.
const CONCURRENCY = 8;
// Failures reported at most (the rest are counted).
const FAILURES_SHOWN = 20;

const [url, expectedFile] = process.argv.slice(2);
if (!url || !expectedFile) {
  console.error('usage: node history_check.mjs WS_URL EXPECTED_JSON');
  process.exit(2);
}

const started = Date.now();
const failures = [];
let checked = 0;
let api = null;
let finished = false;
function finish () {
  if (finished) return;
  finished = true;
  const ok = failures.length === 0;
  const shown = failures.slice(0, FAILURES_SHOWN);
  if (failures.length > FAILURES_SHOWN) shown.push(`... and ${failures.length - FAILURES_SHOWN} more`);
  writeOut(JSON.stringify(ok ? { ok, checked, ms: Date.now() - started } : { ok, checked, failures: shown }));
  const exit = () => process.exit(ok ? 0 : 1);
  if (!api) return exit();
  Promise.race([api.disconnect().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 2000))])
    .then(exit, exit);
}
function fail (msg) {
  failures.push(msg);
  console.error('FAIL: ' + msg);
}
setTimeout(() => { fail(`timed out after ${TOTAL_TIMEOUT_MS} ms`); finish(); }, TOTAL_TIMEOUT_MS).unref();

const require = createRequire(join(CLIENTS_DIR, 'noop.js'));
const { ApiPromise, WsProvider } = require('@polkadot/api');

async function account (hash, address) {
  const a = await (await api.at(hash)).query.system.account(address);
  return { free: a.data.free.toString(), nonce: a.nonce.toNumber() };
}

async function check (t) {
  const where = `block ${t.number} (${t.hash})`;
  const signed = await api.rpc.chain.getBlock(t.hash);
  const block = signed.block;
  if (block.header.number.toNumber() !== t.number) fail(`${where}: header number ${block.header.number}`);
  if (block.header.parentHash.toHex() !== t.parentHash) fail(`${where}: parent ${block.header.parentHash.toHex()}`);
  const ext = block.extrinsics[t.index];
  if (!ext) return fail(`${where}: no extrinsic ${t.index} (of ${block.extrinsics.length})`);
  const got = {
    hash: ext.hash.toHex(),
    section: ext.method.section,
    method: ext.method.method,
    args: ext.method.args.map((a) => a.toString()),
    signer: ext.signer.toString()
  };
  const want = { hash: t.extrinsicHash, section: t.section, method: t.method, args: t.args, signer: t.sender };
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    return fail(`${where}: extrinsic ${t.index} decodes as ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
  for (const [label, hash] of [['parent', t.parentHash], ['block', t.hash]]) {
    const acc = await account(hash, t.sender);
    if (JSON.stringify(acc) !== JSON.stringify(t[label])) {
      return fail(`${where}: ${t.sender} at the ${label} is ${JSON.stringify(acc)}, recorded ${JSON.stringify(t[label])}`);
    }
  }
  checked++;
}

async function main () {
  const expected = JSON.parse(readFileSync(expectedFile, 'utf8'));
  api = await ApiPromise.create({ provider: new WsProvider(url), noInitWarn: true, throwOnConnect: true });
  const genesis = api.genesisHash.toHex();
  if (expected.genesis && genesis !== expected.genesis) fail(`genesis ${genesis}, want ${expected.genesis}`);
  let next = 0;
  const worker = async () => {
    while (next < expected.transfers.length) {
      const t = expected.transfers[next++];
      await check(t).catch((e) => fail(`block ${t.number} (${t.hash}): ${e && e.message ? e.message : e}`));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (checked !== expected.transfers.length && failures.length === 0) {
    fail(`checked ${checked} of ${expected.transfers.length} transfers`);
  }
}

main().then(finish, (e) => { fail(String(e && e.message ? e.message : e)); finish(); });
