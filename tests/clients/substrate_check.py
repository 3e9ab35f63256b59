#!/usr/bin/env python3
"""Real-client check: substrate-interface's SubstrateInterface (its real websocket connection,
raw rpc_request, no metadata) plus scalecodec's own Header/DigestItem types, against an archive
serving Substrate's JSON-RPC.

usage: $POA_CLIENTS_DIR/venv/bin/python substrate_check.py WS_URL EXPECTED_JSON_FILE
  EXPECTED_JSON_FILE: {"genesis": "0x..", "blocks": [{"number": 5, "hash": "0x.."}, ...]}
  optional keys, compared exactly when present: "chain", "name", "properties".
env: POA_CHECK_TIMEOUT_S (whole run, default 120), POA_RPC_TIMEOUT_S (socket timeout, default 30).
stdout: exactly one JSON line, {"ok": true, "checked": N} (N = expected blocks checked) and exit 0,
        or {"ok": false, "checked": N, "failures": [...]} and exit 1. Details go to stderr.

Without metadata: SubstrateInterface's constructor opens the websocket and, because
auto_discover=True, sends system_chain to pick a type-registry preset by chain name (none matches
an unknown chain, so only scalecodec's "core" preset is loaded). Nothing in this script calls
init_runtime()/get_block(), which would ask for state_getMetadata. The header types come from
scalecodec's "legacy" preset, loaded into the interface's own runtime_config.
"""

import hashlib
import json
import os
import re
import signal
import sys

UNKNOWN_HASH = '0x' + '11' * 32
ZERO_HASH = '0x' + '00' * 32
REQUIRED_METHODS = ['chain_getBlock', 'chain_getHeader', 'chain_getBlockHash', 'archive_v1_header']
TOTAL_TIMEOUT_S = int(os.environ.get('POA_CHECK_TIMEOUT_S', '120'))
RPC_TIMEOUT_S = float(os.environ.get('POA_RPC_TIMEOUT_S', '30'))

failures = []
checked = 0
_stdout = sys.stdout
sys.stdout = sys.stderr  # keep stdout for the summary line only


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def fail(msg):
    failures.append(msg)
    log('FAIL: ' + msg)


def show(v):
    s = json.dumps(v, default=str)
    return s if len(s) <= 300 else s[:300] + '…'


def summary_and_exit(code):
    ok = code == 0 and not failures
    out = {"ok": True, "checked": checked} if ok else {"ok": False, "checked": checked, "failures": failures}
    _stdout.write(json.dumps(out) + '\n')
    _stdout.flush()
    sys.stderr.flush()
    os._exit(0 if ok else 1)


def eq(what, got, want):
    if got != want:
        fail(f'{what}: got {show(got)}, want {show(want)}')
        return False
    return True


def is_hash(v):
    return isinstance(v, str) and re.fullmatch(r'0x[0-9a-fA-F]{64}', v) is not None


def is_hex(v):
    return isinstance(v, str) and re.fullmatch(r'0x([0-9a-fA-F]{2})*', v) is not None


def is_byte_list(v):
    return isinstance(v, list) and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in v)


def on_alarm(_signum, _frame):
    fail(f'timed out after {TOTAL_TIMEOUT_S} s')
    summary_and_exit(1)


def main():
    global checked
    if len(sys.argv) != 3:
        log('usage: venv/bin/python substrate_check.py WS_URL EXPECTED_JSON_FILE')
        sys.exit(2)
    url, expected_file = sys.argv[1], sys.argv[2]

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TOTAL_TIMEOUT_S)

    try:
        with open(expected_file) as f:
            expected = json.load(f)
    except Exception as e:  # noqa: BLE001
        fail(f'cannot read {expected_file}: {e}')
        summary_and_exit(1)
    if not is_hash(expected.get('genesis')) or not isinstance(expected.get('blocks'), list):
        fail(f'{expected_file}: expected {{"genesis": "0x..", "blocks": [{{"number", "hash"}}...]}}')
        summary_and_exit(1)

    try:
        from importlib.metadata import version
        from scalecodec.base import ScaleBytes
        from scalecodec.type_registry import load_type_registry_preset
        from substrateinterface import SubstrateInterface
        from substrateinterface.exceptions import SubstrateRequestException
        log(f'clients: substrate-interface {version("substrate-interface")}, scalecodec {version("scalecodec")}, '
            f'websocket-client {version("websocket-client")} ({sys.executable})')
    except Exception as e:  # noqa: BLE001
        fail(f'cannot import substrate-interface (run tests/clients/install.sh, use its venv python): {e}')
        summary_and_exit(1)

    try:
        # The real class and its real websocket transport; the only option added is a socket
        # timeout so that a silent server fails the check instead of hanging it.
        s = SubstrateInterface(url=url, ws_options={'timeout': RPC_TIMEOUT_S})
    except Exception as e:  # noqa: BLE001
        fail(f'SubstrateInterface({url!r}) failed: {type(e).__name__}: {e}')
        summary_and_exit(1)

    def rpc(method, params):
        """(True, result) or (False, error). The websocket transport raises
        SubstrateRequestException for a JSON-RPC error; a dict with 'error' is handled too."""
        try:
            resp = s.rpc_request(method, params)
        except SubstrateRequestException as e:
            return False, e.args[0] if e.args else str(e)
        except Exception as e:  # noqa: BLE001  (socket timeout, closed connection, ...)
            return False, f'{type(e).__name__}: {e}'
        if not isinstance(resp, dict):
            return False, f'not a JSON-RPC response: {show(resp)}'
        if 'error' in resp:
            return False, resp['error']
        if 'result' not in resp:
            return False, f'no result in {show(resp)}'
        return True, resp['result']

    MISSING = object()

    def must(method, params):
        ok, res = rpc(method, params)
        if not ok:
            fail(f'{method}({show(params)}) returned an error: {show(res)}')
            return MISSING
        return res

    # scalecodec's own types, in the interface's own runtime configuration.
    rc = s.runtime_config
    if rc.get_decoder_class('Header') is None:
        rc.update_type_registry(load_type_registry_preset('legacy'))

    def scale(type_string, hex_data, what):
        """Decode hex with a scalecodec type, rejecting trailing bytes. Returns (obj, value) or (None, None)."""
        try:
            obj = rc.create_scale_object(type_string, ScaleBytes(hex_data))
            return obj, obj.decode(check_remaining=True)
        except Exception as e:  # noqa: BLE001
            fail(f'{what}: scalecodec cannot decode {type_string}: {type(e).__name__}: {e}')
            return None, None

    def compact_u32(n):
        return bytes(rc.create_scale_object('Compact<u32>').encode(n).data)

    # --- what SubstrateInterface itself asks on connect / via its properties ---
    for method, key in (('system_chain', 'chain'), ('system_name', 'name'), ('system_version', None)):
        v = must(method, [])
        if v is MISSING:
            continue
        if not isinstance(v, str) or not v:
            fail(f'{method}: not a non-empty string: {show(v)}')
        elif key and key in expected:
            eq(method, v, expected[key])

    props = must('system_properties', [])
    if props is not MISSING:
        if not isinstance(props, dict):
            fail(f'system_properties: not an object: {show(props)}')
        else:
            if 'ss58Format' in props and not isinstance(props['ss58Format'], int):
                fail(f'system_properties.ss58Format: {show(props["ss58Format"])}')
            if 'tokenDecimals' in props and not isinstance(props['tokenDecimals'], (int, list)):
                fail(f'system_properties.tokenDecimals: {show(props["tokenDecimals"])}')
            if 'tokenSymbol' in props and not isinstance(props['tokenSymbol'], (str, list)):
                fail(f'system_properties.tokenSymbol: {show(props["tokenSymbol"])}')
            if 'properties' in expected:
                eq('system_properties', props, expected['properties'])
            # The client's own accessors over system_properties.
            try:
                log(f'client view: chain={s.chain!r} ss58_format={s.ss58_format!r} '
                    f'token_decimals={s.token_decimals!r} token_symbol={s.token_symbol!r}')
            except Exception as e:  # noqa: BLE001
                fail(f'SubstrateInterface properties failed: {type(e).__name__}: {e}')

    health = must('system_health', [])
    if health is not MISSING and not (isinstance(health, dict) and isinstance(health.get('peers'), int)
                                      and isinstance(health.get('isSyncing'), bool)
                                      and isinstance(health.get('shouldHavePeers'), bool)):
        fail(f'system_health: not {{peers, isSyncing, shouldHavePeers}}: {show(health)}')

    methods = must('rpc_methods', [])
    if methods is not MISSING:
        if not isinstance(methods, dict) or not isinstance(methods.get('methods'), list):
            fail(f'rpc_methods: not {{methods:[...]}}: {show(methods)}')
        else:
            for m in REQUIRED_METHODS:
                if not s.supports_rpc_method(m):  # the client's own rpc_methods lookup
                    fail(f'rpc_methods does not list {m}')

    # The client's own helper for chain_getBlockHash.
    try:
        eq('get_block_hash(0) vs genesis', s.get_block_hash(0), expected['genesis'])
    except Exception as e:  # noqa: BLE001
        fail(f'get_block_hash(0) failed: {type(e).__name__}: {e}')

    def check_header_shape(what, h):
        if not isinstance(h, dict):
            fail(f'{what}: not a JSON object: {show(h)}')
            return False
        ok = True
        for k in ('parentHash', 'stateRoot', 'extrinsicsRoot'):
            if not is_hash(h.get(k)):
                fail(f'{what}.{k} is not a 32-byte hex hash: {show(h.get(k))}')
                ok = False
        if not isinstance(h.get('number'), str) or re.fullmatch(r'0x[0-9a-fA-F]+', h['number']) is None:
            fail(f'{what}.number is not a hex string: {show(h.get("number"))}')
            ok = False
        d = h.get('digest')
        if not isinstance(d, dict) or not isinstance(d.get('logs'), list) or not all(is_hex(x) for x in d['logs']):
            fail(f'{what}.digest is not {{logs:[hex...]}}: {show(d)}')
            ok = False
        return ok

    def check_justifications(what, j):
        if j is None:
            return
        if not isinstance(j, list):
            fail(f'{what}: justifications is neither null nor a list: {show(j)}')
            return
        for i, pair in enumerate(j):
            if not isinstance(pair, list) or len(pair) != 2:
                fail(f'{what}: justification {i} is not an [engineId, data] pair: {show(pair)}')
                continue
            engine, data = pair
            if not ((is_byte_list(engine) and len(engine) == 4)
                    or (isinstance(engine, str) and re.fullmatch(r'0x[0-9a-fA-F]{8}', engine))):
                fail(f'{what}: justification {i} engine id is not 4 bytes: {show(engine)}')
            if not (is_hex(data) or is_byte_list(data)):
                fail(f'{what}: justification {i} data is not bytes: {show(data)}')

    def check_block(number, bh):
        tag = f'block #{number} {bh}'
        before = len(failures)

        try:
            eq(f'{tag}: get_block_hash({number})', s.get_block_hash(number), bh)
        except Exception as e:  # noqa: BLE001
            fail(f'{tag}: get_block_hash({number}) failed: {type(e).__name__}: {e}')

        header = must('chain_getHeader', [bh])
        if header is MISSING or not check_header_shape(f'{tag}: chain_getHeader', header):
            return False
        eq(f'{tag}: chain_getHeader .number', int(header['number'], 16), number)

        # SCALE from the JSON header (Compact<u32> number via scalecodec), hashed with BLAKE2b-256.
        json_scale = None
        try:
            json_scale = (bytes.fromhex(header['parentHash'][2:]) + compact_u32(int(header['number'], 16))
                          + bytes.fromhex(header['stateRoot'][2:]) + bytes.fromhex(header['extrinsicsRoot'][2:])
                          + compact_u32(len(header['digest']['logs']))
                          + b''.join(bytes.fromhex(x[2:]) for x in header['digest']['logs']))
            eq(f'{tag}: blake2b-256(SCALE(chain_getHeader))',
               '0x' + hashlib.blake2b(json_scale, digest_size=32).hexdigest(), bh)
        except Exception as e:  # noqa: BLE001
            fail(f'{tag}: cannot encode the header JSON: {type(e).__name__}: {e}')
        json_logs = []
        for i, x in enumerate(header['digest']['logs']):
            _, v = scale('DigestItem', x, f'{tag}: digest log {i}')
            json_logs.append(v)

        if number == 0:
            eq(f'{tag}: genesis parentHash', header['parentHash'], ZERO_HASH)
        else:
            parent = must('chain_getBlockHash', [number - 1])
            if parent is not MISSING:
                eq(f'{tag}: parentHash vs chain_getBlockHash({number - 1})', header['parentHash'], parent)

        # What get_block() does before asking for metadata: runtime version at the parent.
        at = bh if number == 0 else header['parentHash']
        rv = must('state_getRuntimeVersion', [at])
        if rv is not MISSING and not (isinstance(rv, dict) and isinstance(rv.get('specVersion'), int)):
            fail(f'{tag}: state_getRuntimeVersion({at}) has no integer specVersion: {show(rv)}')

        signed = must('chain_getBlock', [bh])
        if signed is not MISSING:
            if not isinstance(signed, dict) or not isinstance(signed.get('block'), dict):
                fail(f'{tag}: chain_getBlock is not {{block, justifications}}: {show(signed)}')
            else:
                eq(f'{tag}: chain_getBlock header vs chain_getHeader', signed['block'].get('header'), header)
                exts = signed['block'].get('extrinsics')
                if not isinstance(exts, list):
                    fail(f'{tag}: extrinsics is not a list: {show(exts)}')
                else:
                    for i, x in enumerate(exts):
                        if not is_hex(x):
                            fail(f'{tag}: extrinsic {i} is not hex: {show(x)}')
                        else:  # opaque Vec<u8>: compact length prefix, then exactly that many bytes
                            scale('Bytes', x, f'{tag}: extrinsic {i}')
                if 'justifications' not in signed:
                    fail(f'{tag}: chain_getBlock has no "justifications" key')
                else:
                    check_justifications(tag, signed['justifications'])

        raw = must('archive_v1_header', [bh])
        if raw is not MISSING:
            if not is_hex(raw):
                fail(f'{tag}: archive_v1_header is not hex: {show(raw)}')
            else:
                raw_bytes = bytes.fromhex(raw[2:])
                eq(f'{tag}: blake2b-256(archive_v1_header)',
                   '0x' + hashlib.blake2b(raw_bytes, digest_size=32).hexdigest(), bh)
                if json_scale is not None:
                    eq(f'{tag}: SCALE of chain_getHeader JSON vs archive_v1_header', '0x' + json_scale.hex(), raw.lower())
                _, dec = scale('Header', raw, f'{tag}: archive_v1_header')
                if dec is not None:
                    eq(f'{tag}: Header(archive_v1_header).number', dec['number'], number)
                    eq(f'{tag}: Header(archive_v1_header).parent_hash', dec['parent_hash'], header['parentHash'].lower())
                    eq(f'{tag}: Header(archive_v1_header).state_root', dec['state_root'], header['stateRoot'].lower())
                    eq(f'{tag}: Header(archive_v1_header).extrinsics_root', dec['extrinsics_root'],
                       header['extrinsicsRoot'].lower())
                    eq(f'{tag}: Header(archive_v1_header).digest.logs vs decoded JSON logs', dec['digest']['logs'], json_logs)

        return len(failures) == before

    for b in expected['blocks']:
        if not isinstance(b, dict) or not isinstance(b.get('number'), int) or not is_hash(b.get('hash')):
            fail(f'{expected_file}: bad block entry {show(b)}')
            continue
        if check_block(b['number'], b['hash'].lower()):
            checked += 1

    # Unknown block: a JSON-RPC error, not a null result.
    ok, res = rpc('chain_getBlock', [UNKNOWN_HASH])
    if ok:
        fail(f'chain_getBlock({UNKNOWN_HASH}) returned result {show(res)} instead of a JSON-RPC error')
    else:
        log(f'chain_getBlock(unknown) gave an error as expected: {show(res)}')

    try:
        s.close()
    except Exception as e:  # noqa: BLE001
        log(f'close: {e}')
    summary_and_exit(1 if failures else 0)


if __name__ == '__main__':
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        fail(f'unexpected exception: {type(e).__name__}: {e}')
        summary_and_exit(1)
