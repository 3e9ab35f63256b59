#!/usr/bin/env node
// Drives a chopsticks peer (Manual block mode) the way a wallet would: @polkadot/api's
// ApiPromise on the peer, polkadot.js keyring pairs (sr25519 and ed25519) endowed with
// dev_setStorage, one balances transfer per block (transferKeepAlive / transferAllowDeath, or
// `transfer`, its name before 2023, on runtimes that predate it such as the Asset Hub spec 900
// that chopsticks runs here; signAsync + author_submitExtrinsic + dev_newBlock). Every few blocks a fresh account is endowed
// and then sends nearly everything back, leaving less than the existential deposit, so the chain
// reaps it (its System.Account entry is deleted). Afterwards, for each transfer, the sender's
// free balance and nonce at the parent and at the block are read live with api.at(hash).
//
// usage: node chopsticks_drive.mjs WS_URL BLOCKS OUT_JSON
// env: POA_CLIENTS_DIR (default ~/.cache/poa-archiver/clients; see install.sh),
//      POA_CHECK_TIMEOUT_MS (whole run, default 600000).
// OUT_JSON: {"genesis","specVersion","first","last","transfers":[{number, hash, parentHash, index,
//   extrinsicHash, section, method, args, sender, senderKey (its System.Account storage key),
//   crypto, reaped, parent: {free, nonce},
//   block: {free, nonce}}]}
// stdout: exactly one JSON line, {"ok":true,"blocks":N,"transfers":N,"reaped":N,"ms":T} and exit 0,
//         or {"ok":false,"error":"..."} and exit 1. Details go to stderr.

import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const writeOut = (s) => process.stdout.write(s + '\n');
console.log = console.error;

const CLIENTS_DIR = process.env.POA_CLIENTS_DIR || join(homedir(), '.cache', 'poa-archiver', 'clients');
const TOTAL_TIMEOUT_MS = Number(process.env.POA_CHECK_TIMEOUT_MS || 600000);
// Every REAP_EVERY blocks, one pair of blocks endows a fresh account and then reaps it.
const REAP_EVERY = 50;
// Balance each signing pair starts with (plancks): far more than the run spends.
const ENDOWMENT = 10n ** 18n;
// Queries in flight at once while reading balances back.
const QUERY_CONCURRENCY = 8;

const [url, blocksArg, outFile] = process.argv.slice(2);
const BLOCKS = Number(blocksArg);
if (!url || !outFile || !(BLOCKS > 0)) {
  console.error('usage: node chopsticks_drive.mjs WS_URL BLOCKS OUT_JSON');
  process.exit(2);
}

const started = Date.now();
let api = null;
let provider = null;
function finish (summary) {
  writeOut(JSON.stringify(summary));
  const exit = () => process.exit(summary.ok ? 0 : 1);
  if (!api) return exit();
  Promise.race([api.disconnect().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 2000))])
    .then(exit, exit);
}
setTimeout(() => finish({ ok: false, error: `timed out after ${TOTAL_TIMEOUT_MS} ms` }), TOTAL_TIMEOUT_MS).unref();

const require = createRequire(join(CLIENTS_DIR, 'noop.js'));
const { ApiPromise, WsProvider } = require('@polkadot/api');
const { Keyring } = require('@polkadot/keyring');
const { cryptoWaitReady } = require('@polkadot/util-crypto');

async function endow (addresses) {
  const entries = addresses.map((a) => [[a], { nonce: 0, providers: 1, data: { free: ENDOWMENT.toString() } }]);
  await provider.send('dev_setStorage', [{ System: { Account: entries } }]);
}

async function newBlock () {
  return provider.send('dev_newBlock', [{ count: 1 }]);
}

async function submitInBlock (tx, signer, nonce) {
  await tx.signAsync(signer, { nonce, era: 0 });
  await provider.send('author_submitExtrinsic', [tx.toHex()]);
  const hash = await newBlock();
  return { hash, extrinsicHash: tx.hash.toHex(), args: tx.method.args.map((a) => a.toString()) };
}

async function account (at, address) {
  const a = await at.query.system.account(address);
  return { free: a.data.free.toString(), nonce: a.nonce.toNumber() };
}

async function main () {
  await cryptoWaitReady();
  provider = new WsProvider(url);
  api = await ApiPromise.create({ provider, noInitWarn: true });
  const sr = new Keyring({ type: 'sr25519', ss58Format: api.registry.chainSS58 });
  const ed = new Keyring({ type: 'ed25519', ss58Format: api.registry.chainSS58 });
  const senders = [
    { pair: sr.addFromUri('//Alice'), crypto: 'sr25519' },
    { pair: ed.addFromUri('//Bob'), crypto: 'ed25519' },
    { pair: sr.addFromUri('//Charlie'), crypto: 'sr25519' },
    { pair: ed.addFromUri('//Dave'), crypto: 'ed25519' }
  ];
  const dests = [sr.addFromUri('//Eve').address, ed.addFromUri('//Ferdie').address];
  await endow(senders.map((s) => s.pair.address));
  const nonces = new Map(senders.map((s) => [s.pair.address, 0]));
  const ed0 = api.consts.balances.existentialDeposit.toBigInt();
  const allowDeath = api.tx.balances.transferAllowDeath ? 'transferAllowDeath' : 'transfer';

  const transfers = [];
  const first = (await api.rpc.chain.getHeader()).number.toNumber() + 1;
  let reaps = 0;
  for (let i = 0; transfers.length < BLOCKS; i++) {
    if (i % REAP_EVERY === REAP_EVERY - 1 && transfers.length + 2 <= BLOCKS) {
      // A fresh account: endowed by Alice, then sends all but half an existential deposit back.
      const eph = ed.addFromUri(`//Reaped${reaps++}`);
      const alice = senders[0];
      const tx = api.tx.balances[allowDeath](eph.address, ed0 * 1000n);
      const nonce = nonces.get(alice.pair.address);
      nonces.set(alice.pair.address, nonce + 1);
      const r = await submitInBlock(tx, alice.pair, nonce);
      transfers.push({ ...r, section: 'balances', method: allowDeath, sender: alice.pair.address, crypto: alice.crypto, reaped: false });
      const probe = api.tx.balances[allowDeath](alice.pair.address, ed0 * 1000n);
      const fee = (await probe.paymentInfo(eph, { era: 0, nonce: 0 })).partialFee.toBigInt();
      const back = api.tx.balances[allowDeath](alice.pair.address, ed0 * 1000n - fee - ed0 / 2n);
      const r2 = await submitInBlock(back, eph, 0);
      transfers.push({ ...r2, section: 'balances', method: allowDeath, sender: eph.address, crypto: 'ed25519', reaped: true });
      continue;
    }
    const s = senders[i % senders.length];
    const method = i % 2 === 0 ? 'transferKeepAlive' : allowDeath;
    const tx = api.tx.balances[method](dests[i % dests.length], 10n ** 12n + BigInt(i));
    const nonce = nonces.get(s.pair.address);
    nonces.set(s.pair.address, nonce + 1);
    const r = await submitInBlock(tx, s.pair, nonce);
    transfers.push({ ...r, section: 'balances', method, sender: s.pair.address, crypto: s.crypto, reaped: false });
  }
  console.error(`built ${transfers.length} blocks in ${Date.now() - started} ms`);

  // Where each transfer landed, and the sender's account at the parent and at the block.
  let next = 0;
  const worker = async () => {
    while (next < transfers.length) {
      const t = transfers[next++];
      const signed = await api.rpc.chain.getBlock(t.hash);
      const header = signed.block.header;
      t.number = header.number.toNumber();
      t.parentHash = header.parentHash.toHex();
      t.index = signed.block.extrinsics.findIndex((x) => x.hash.toHex() === t.extrinsicHash);
      if (t.index < 0) throw new Error(`block ${t.number}: the ${t.method} from ${t.sender} was not included`);
      t.senderKey = api.query.system.account.key(t.sender);
      t.parent = await account(await api.at(t.parentHash), t.sender);
      t.block = await account(await api.at(t.hash), t.sender);
    }
  };
  await Promise.all(Array.from({ length: QUERY_CONCURRENCY }, worker));
  for (const t of transfers.filter((x) => x.reaped)) {
    if (t.block.free !== '0' || t.block.nonce !== 0) throw new Error(`block ${t.number}: ${t.sender} was not reaped: ${JSON.stringify(t.block)}`);
  }
  const out = {
    genesis: (await api.rpc.chain.getBlockHash(0)).toHex(),
    specVersion: api.runtimeVersion.specVersion.toNumber(),
    first,
    last: transfers[transfers.length - 1].number,
    transfers
  };
  writeFileSync(outFile, JSON.stringify(out, null, 1));
  return { ok: true, blocks: out.last - first + 1, transfers: transfers.length, reaped: reaps, ms: Date.now() - started };
}

main().then(finish, (e) => {
  console.error(e);
  finish({ ok: false, error: String(e && e.message ? e.message : e) });
});
