#!/usr/bin/env node
// Real-client scenario through polkadot.js's normal entry points (@polkadot/api 16.5.6):
// `ApiPromise.create`, `api.tx.balances.*(…).signAndSend(pair, cb)`, `api.rpc.chain.getBlock` and
// `(await api.at(hash)).query.system.account(addr)`. No raw provider calls.
//
// usage: node polkadot_api.mjs submit WS_URL OUT_JSON
//          signs and submits transfers with sr25519 and ed25519 keyring pairs (//Alice of each),
//          waits until each is in a block, checks its events (Balances.Transfer with the submitted
//          from/to/amount, System.ExtrinsicSuccess), and writes one record per transfer: block
//          hash and number, extrinsic index, section/method/args, signer, and the signer's nonce
//          and free balance at the block's parent and at the block (queried with api.at).
//        node polkadot_api.mjs check WS_URL IN_JSON
//          for every record (from either submitter), `api.rpc.chain.getBlock(hash)` decodes the
//          extrinsic with the recorded section/method/args and signer, and api.at(parent/block)
//          query.system.account(signer) returns the recorded nonce and free balance.
// env: POA_CLIENTS_DIR (see install.sh), POA_CHECK_TIMEOUT_MS (whole run, default 180000).
// stdout: exactly one JSON line: {"ok":true,"checked":N} and exit 0, or {"ok":false,...} and exit 1.

import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const writeOut = (s) => process.stdout.write(s + '\n');
console.log = console.error;
// polkadot.js warns about unknown signed extensions and the like on stderr; keep stdout clean.
console.warn = console.error;

const CLIENTS_DIR = process.env.POA_CLIENTS_DIR || join(homedir(), '.cache', 'poa-archiver', 'clients');
const TOTAL_TIMEOUT_MS = Number(process.env.POA_CHECK_TIMEOUT_MS || 180000);
const require = createRequire(join(CLIENTS_DIR, 'package.json'));
const { ApiPromise, WsProvider, Keyring } = require('@polkadot/api');
const { cryptoWaitReady, decodeAddress } = require('@polkadot/util-crypto');
const { u8aToHex } = require('@polkadot/util');

// Accounts are compared and recorded as 0x-hex public keys: SS58 strings differ by chain prefix.
const hexOf = (address) => u8aToHex(decodeAddress(address.toString()));

const failures = [];
let checked = 0;
let api = null;

function fail (msg) {
  failures.push(msg);
  console.error('FAIL: ' + msg);
}

async function finish () {
  const ok = failures.length === 0;
  writeOut(JSON.stringify(ok ? { ok, checked } : { ok, checked, failures }));
  if (api) await Promise.race([api.disconnect().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 2000))]);
  process.exit(ok ? 0 : 1);
}

setTimeout(() => { fail(`timed out after ${TOTAL_TIMEOUT_MS} ms`); finish(); }, TOTAL_TIMEOUT_MS).unref();

async function accountAt (hash, address) {
  const at = await api.at(hash);
  const info = await at.query.system.account(address);
  return { nonce: info.nonce.toNumber(), free: info.data.free.toString() };
}

// Sends `tx` signed by `pair`, resolves once it is in a block, with the block hash and its events.
function sendUntilInBlock (tx, pair) {
  return new Promise((resolve, reject) => {
    let unsub = null;
    tx.signAndSend(pair, (result) => {
      if (result.isError || result.status.isInvalid || result.status.isDropped || result.status.isUsurped) {
        reject(new Error(`transaction status ${result.status.type}`));
      } else if (result.status.isInBlock || result.status.isFinalized) {
        // A node that finalizes at once may report Finalized without InBlock first.
        if (unsub) unsub();
        const hash = result.status.isInBlock ? result.status.asInBlock : result.status.asFinalized;
        resolve({ blockHash: hash.toHex(), events: result.events, dispatchError: result.dispatchError });
      }
    }).then((u) => { unsub = u; }, reject);
  });
}

async function submitOne (pair, method, dest, amount) {
  // Runtimes older than polkadot-sdk 1.0 call transferAllowDeath `transfer`.
  const call = api.tx.balances[method] || (method === 'transferAllowDeath' ? api.tx.balances.transfer : undefined);
  if (!call) throw new Error(`the runtime has no balances.${method}`);
  const tx = call(dest, amount);
  const { blockHash, events, dispatchError } = await sendUntilInBlock(tx, pair);
  if (dispatchError) fail(`${method} by ${pair.type}: dispatch error ${dispatchError.toString()}`);
  const names = events.map(({ event }) => `${event.section}.${event.method}`);
  const transfer = events.find(({ event }) => event.section === 'balances' && event.method === 'Transfer');
  if (!transfer) {
    fail(`${method} by ${pair.type}: no balances.Transfer event (events: ${names.join(', ')})`);
  } else {
    const [from, to, value] = transfer.event.data;
    if (hexOf(from) !== hexOf(pair.address) || hexOf(to) !== hexOf(dest) || value.toString() !== String(amount)) {
      fail(`${method} by ${pair.type}: Transfer event ${transfer.event.data.toString()} does not match`);
    }
  }
  if (!names.includes('system.ExtrinsicSuccess')) fail(`${method} by ${pair.type}: no ExtrinsicSuccess (${names.join(', ')})`);
  const signed = await api.rpc.chain.getBlock(blockHash);
  const index = signed.block.extrinsics.findIndex((x) => x.hash.toHex() === tx.hash.toHex());
  if (index < 0) fail(`${method} by ${pair.type}: not found in block ${blockHash}`);
  const header = signed.block.header;
  const record = {
    client: 'polkadot.js',
    keyType: pair.type,
    number: header.number.toNumber(),
    hash: blockHash,
    parentHash: header.parentHash.toHex(),
    index,
    section: 'balances',
    method: tx.method.method,
    args: [hexOf(dest), String(amount)],
    signer: hexOf(pair.address),
    before: await accountAt(header.parentHash.toHex(), pair.address),
    after: await accountAt(blockHash, pair.address),
  };
  checked += 1;
  return record;
}

async function submit (outFile) {
  await cryptoWaitReady();
  const sr = new Keyring({ type: 'sr25519' }).addFromUri('//Alice');
  const ed = new Keyring({ type: 'ed25519' }).addFromUri('//Alice');
  const bob = new Keyring({ type: 'sr25519' }).addFromUri('//Bob').address;
  const records = [];
  for (const [pair, method, amount] of [
    [sr, 'transferKeepAlive', 1_000_000_000_001n],
    [ed, 'transferKeepAlive', 2_000_000_000_002n],
    [sr, 'transferAllowDeath', 3_000_000_000_003n],
    [ed, 'transferAllowDeath', 4_000_000_000_004n],
  ]) {
    const r = await submitOne(pair, method, bob, amount);
    if (BigInt(r.before.free) - BigInt(r.after.free) < amount) fail(`${method} by ${pair.type}: balance fell by less than ${amount}`);
    if (r.after.nonce !== r.before.nonce + 1) fail(`${method} by ${pair.type}: nonce ${r.before.nonce} -> ${r.after.nonce}`);
    records.push(r);
  }
  writeFileSync(outFile, JSON.stringify(records, null, 1));
}

// [dest as hex, amount as a decimal string]: the two arguments of every balances transfer.
function argsOf (extrinsic) {
  const [dest, value] = extrinsic.method.args;
  return [hexOf(dest.isId ? dest.asId : dest), value.toString()];
}

const sameAccount = (a, b) => a.nonce === b.nonce && a.free === b.free;

async function check (inFile) {
  const records = JSON.parse(readFileSync(inFile, 'utf8'));
  for (const r of records) {
    const where = `${r.client} ${r.method} in #${r.number}`;
    const signed = await api.rpc.chain.getBlock(r.hash);
    const x = signed.block.extrinsics[r.index];
    if (!x) { fail(`${where}: block has no extrinsic ${r.index}`); continue; }
    const got = { section: x.method.section, method: x.method.method, args: argsOf(x), signer: hexOf(x.signer.isId ? x.signer.asId : x.signer) };
    const want = { section: r.section, method: r.method, args: r.args, signer: r.signer };
    if (JSON.stringify(got) !== JSON.stringify(want)) fail(`${where}: decoded ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    const before = await accountAt(r.parentHash, r.signer);
    const after = await accountAt(r.hash, r.signer);
    if (!sameAccount(before, r.before)) fail(`${where}: at parent ${JSON.stringify(before)}, recorded ${JSON.stringify(r.before)}`);
    if (!sameAccount(after, r.after)) fail(`${where}: at block ${JSON.stringify(after)}, recorded ${JSON.stringify(r.after)}`);
    checked += 1;
  }
}

const [mode, url, file] = process.argv.slice(2);
if (!['submit', 'check'].includes(mode) || !url || !file) {
  console.error('usage: node polkadot_api.mjs submit|check WS_URL JSON_FILE');
  process.exit(2);
}
try {
  api = await ApiPromise.create({ provider: new WsProvider(url), throwOnConnect: true, noInitWarn: true });
  if (mode === 'submit') await submit(file); else await check(file);
} catch (e) {
  fail(`${mode}: ${e && e.stack ? e.stack : e}`);
}
await finish();
