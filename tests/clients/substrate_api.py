#!/usr/bin/env python3
"""Real-client scenario through substrate-interface 1.8.1's normal entry points.

`SubstrateInterface(url)`, `compose_call` + `create_signed_extrinsic` + `submit_extrinsic`,
`get_block(block_hash=...)` and `query('System', 'Account', [addr], block_hash=...)`. No raw
`rpc_request`.

usage: substrate_api.py submit WS_URL OUT_JSON
         signs transfers with an sr25519 keypair (//Bob) and an ed25519 one (the dev phrase's root) to //Charlie, submits
         them with wait_for_inclusion, checks success and the Balances.Transfer event, and writes
         one record per transfer in polkadot_api.mjs's format (so either script checks either's).
       substrate_api.py check WS_URL IN_JSON
         for every record: get_block(hash) decodes the extrinsic with the recorded module/call,
         destination, amount and signer; query System.Account at the parent and at the block
         returns the recorded nonce and free balance.
stdout: exactly one JSON line, {"ok": true, "checked": N} (exit 0) or {"ok": false, ...} (exit 1).
"""

import json
import sys

from substrateinterface import Keypair, KeypairType, SubstrateInterface
from substrateinterface.constants import DEV_PHRASE
from substrateinterface.utils.ss58 import ss58_decode, ss58_encode

FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def account_at(si, block_hash, address):
    info = si.query("System", "Account", [address], block_hash=block_hash).value
    return {"nonce": info["nonce"], "free": str(info["data"]["free"])}


def as_hex(value):
    """A decoded MultiAddress, AccountId or SS58 address as a 0x-hex public key (SS58 strings
    differ by chain prefix; polkadot_api.mjs records the same form)."""
    if isinstance(value, dict):
        value = value.get("Id", value)
    if isinstance(value, str) and not value.startswith("0x"):
        value = "0x" + ss58_decode(value)
    return value


def ss58_of(public_hex):
    return ss58_encode(public_hex, 42)


def submit_one(si, keypair, call_function, dest, amount):
    # Runtimes older than polkadot-sdk 1.0 call transfer_allow_death `transfer`.
    if call_function == "transfer_allow_death" and not si.get_metadata_call_function(
        "Balances", call_function
    ):
        call_function = "transfer"
    call = si.compose_call(
        call_module="Balances",
        call_function=call_function,
        call_params={"dest": dest, "value": amount},
    )
    extrinsic = si.create_signed_extrinsic(call=call, keypair=keypair)
    receipt = si.submit_extrinsic(extrinsic, wait_for_inclusion=True)
    where = f"{call_function} by {keypair.crypto_type}"
    if not receipt.is_success:
        fail(f"{where}: not successful: {receipt.error_message}")
    events = [(e.value["module_id"], e.value["event_id"]) for e in receipt.triggered_events]
    if ("Balances", "Transfer") not in events:
        fail(f"{where}: no Balances.Transfer event in {events}")
    block = si.get_block(block_hash=receipt.block_hash)
    header = block["header"]
    return {
        "client": "substrate-interface",
        "keyType": "sr25519" if keypair.crypto_type == KeypairType.SR25519 else "ed25519",
        "number": header["number"],
        "hash": receipt.block_hash,
        "parentHash": header["parentHash"],
        "index": receipt.extrinsic_idx,
        "section": "balances",
        "method": camel(call_function),
        "args": [as_hex(dest), str(amount)],
        "signer": "0x" + keypair.public_key.hex(),
        "before": account_at(si, header["parentHash"], keypair.ss58_address),
        "after": account_at(si, receipt.block_hash, keypair.ss58_address),
    }


def submit(si, out_file):
    charlie = Keypair.create_from_uri("//Charlie").ss58_address
    records = []
    for keypair, call_function, amount in [
        (Keypair.create_from_uri("//Bob"), "transfer_keep_alive", 5_000_000_000_005),
        (
            # substrate-interface derives no ed25519 paths: the dev phrase's root ed25519 key,
            # which the reference chain endows like //Alice.
            Keypair.create_from_mnemonic(DEV_PHRASE, crypto_type=KeypairType.ED25519),
            "transfer_allow_death",
            6_000_000_000_006,
        ),
    ]:
        r = submit_one(si, keypair, call_function, charlie, amount)
        if int(r["before"]["free"]) - int(r["after"]["free"]) < amount:
            fail(f"{call_function}: balance fell by less than {amount}")
        if r["after"]["nonce"] != r["before"]["nonce"] + 1:
            fail(f"{call_function}: nonce {r['before']['nonce']} -> {r['after']['nonce']}")
        records.append(r)
    with open(out_file, "w") as f:
        json.dump(records, f, indent=1)
    return len(records)


def decoded(extrinsic):
    v = extrinsic.value
    call = v["call"]
    args = {a["name"]: a["value"] for a in call["call_args"]}
    return {
        "section": call["call_module"].lower(),
        "method": camel(call["call_function"]),
        "args": [as_hex(args.get("dest")), str(args.get("value"))],
        "signer": as_hex(v.get("address")),
    }


def check(si, in_file):
    with open(in_file) as f:
        records = json.load(f)
    checked = 0
    for r in records:
        where = f"{r['client']} {r['method']} in #{r['number']}"
        block = si.get_block(block_hash=r["hash"])
        if r["index"] >= len(block["extrinsics"]):
            fail(f"{where}: block has no extrinsic {r['index']}")
            continue
        got = decoded(block["extrinsics"][r["index"]])
        want = {k: r[k] for k in ("section", "method", "args", "signer")}
        if got != want:
            fail(f"{where}: decoded {got}, want {want}")
        if account_at(si, r["parentHash"], ss58_of(r["signer"])) != r["before"]:
            fail(f"{where}: at parent {account_at(si, r['parentHash'], ss58_of(r['signer']))}, recorded {r['before']}")
        if account_at(si, r["hash"], ss58_of(r["signer"])) != r["after"]:
            fail(f"{where}: at block {account_at(si, r['hash'], ss58_of(r['signer']))}, recorded {r['after']}")
        checked += 1
    return checked


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("submit", "check"):
        print("usage: substrate_api.py submit|check WS_URL JSON_FILE", file=sys.stderr)
        sys.exit(2)
    mode, url, path = sys.argv[1:]
    checked = 0
    try:
        si = SubstrateInterface(url=url)
        checked = submit(si, path) if mode == "submit" else check(si, path)
    except Exception as e:  # the summary line must be printed whatever went wrong
        fail(f"{mode}: {type(e).__name__}: {e}")
    ok = not FAILURES
    summary = {"ok": ok, "checked": checked}
    if not ok:
        summary["failures"] = FAILURES
    print(json.dumps(summary))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
