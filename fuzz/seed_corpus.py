#!/usr/bin/env python3
"""Writes the starting corpus of each fuzz target from the test vectors (tests/vectors/*.json)
and a few hand-written bodies, so the fuzzer starts from valid inputs it could never forge
(signed entries, exports, fork proofs). Files are named by the SHA-1 of their content, as
libFuzzer names its own, so running this again adds nothing twice. scripts/fuzz.sh runs it
only for a target whose corpus directory is empty; the committed corpora are its output after
fuzzing and `cargo fuzz cmin`.

Usage: fuzz/seed_corpus.py [CORPUS_DIR]   (default: fuzz/corpus next to this file)
"""

import hashlib
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"

# Coordination kinds and the selector byte the coord_body target reads: kind index << 1,
# low bit 0 for canonical CBOR, 1 for JSON text (fuzz/src/checks.rs, coord_body).
KINDS = ["capability", "capability.revoke", "intent", "intent.renew", "intent.release",
         "task", "constraint", "pattern", "policy", "x-application", "unknown-kind"]
CLAIM = "ab" * 32
AGENT = "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737"
BODIES = {
    "capability": {"name": "planner", "description": "plans", "version": "1", "url": "a2a://x",
                   "skills": [{"id": "s", "name": "n", "tags": ["t"]}], "ttlMs": 60000},
    "capability.revoke": {"reason": "retired"},
    "intent": {"resource": "repo/plexus", "action": "write", "leaseMs": 5000, "note": "n",
               "priority": 3},
    "intent.renew": {"claim": CLAIM, "leaseMs": 5000},
    "intent.release": {"claim": CLAIM},
    "task": {"taskId": "t1", "contextId": "c", "status": {"state": "TASK_STATE_WORKING",
             "message": "m"}, "references": [CLAIM]},
    "constraint": {"resource": "db/*", "rule": {"type": "rateLimit", "claims": 1,
                   "windowMs": 10000}, "ttlMs": 10000},
    "pattern": {"topic": "t", "summary": "s", "data": {"k": [1, 2.5, None, True]},
                "confidence": 0.5, "references": [CLAIM]},
    "policy": {"version": 2, "effectiveFrom": 1000, "roles": {"worker": ["intent", "x-*"]},
               "members": [{"agent": AGENT, "roles": ["worker"]}],
               "revoked": [{"agent": AGENT, "afterSeq": 3}],
               "limits": {"maxBodyBytes": 1000, "rate": {"entries": 10, "windowMs": 1000},
                          "maxLeaseMs": 60000, "maxClaims": 4, "maxTtlMs": 60000,
                          "clockSkewMs": 30000}, "note": "n"},
    "x-application": {"any": [1, -2, 1.5, "s", {"nested": None}]},
}


def write(corpus, target, data):
    directory = corpus / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def cbor(value):
    """Minimal CBOR encoder (shortest heads) for the sync messages' seeds: dicts, lists, text,
    bytes, unsigned integers and None, as serde's derive lays out the node's wire types."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
        raise ValueError(n)
    if value is None:
        return b"\xf6"
    if isinstance(value, int):
        return head(0, value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        return head(3, len(value.encode())) + value.encode()
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(cbor(item) for item in value)
    return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())


def load(name):
    return json.loads((VECTORS / name).read_text())


def main():
    corpus = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz" / "corpus"
    entries = load("entries.json")
    envelopes = [bytes.fromhex(v["envelope_hex"]) for v in entries["valid"] + entries["invalid"]]
    envelopes += [bytes.fromhex(v["envelope_hex"])
                  for v in load("envelope-errors.json")["envelopes"]]
    for envelope in envelopes:
        write(corpus, "entry", envelope)
    valid = [bytes.fromhex(v["envelope_hex"]) for v in entries["valid"]]
    write(corpus, "sync_response", b"".join(valid))
    write(corpus, "sync_response", b"".join(valid + valid[:1]))

    # The sync codec: the request and response of every ranges and reconcile vector, and one
    # message of each other shape.
    for name in ("ranges.json", "reconcile.json"):
        for case in load(name)["cases"]:
            write(corpus, "sync_codec", bytes.fromhex(case["request_cbor"]))
            write(corpus, "sync_codec", bytes.fromhex(case["response_cbor"]))
    author = bytes.fromhex(AGENT)
    write(corpus, "sync_codec", cbor({"Heads": {"namespaces": ["vectors", "ops"]}}))
    write(corpus, "sync_codec", cbor({"Range": {"namespace": "vectors", "author": author,
                                                "from_seq": 1, "to_seq": 512}}))
    write(corpus, "sync_codec", cbor({"Heads": {"heads": [{"namespace": "vectors",
                                                          "author": author, "seq": 3,
                                                          "id": bytes(32)}]}}))
    write(corpus, "sync_codec", cbor({"Entries": {"entries": valid}}))
    write(corpus, "sync_codec", cbor({"Refused": {"reason": "busy"}}))

    for body in entries["bodies"]:
        write(corpus, "cbor", bytes.fromhex(body["canonical_hex"]))
        write(corpus, "json_request", body["json"].encode())
    floats = load("floats.json")
    for item in floats["valid"]:
        write(corpus, "cbor", bytes.fromhex(item["canonical_hex"]))
        write(corpus, "json_request", item["json"].encode())
    for item in floats["refused_cbor"]:
        write(corpus, "cbor", bytes.fromhex(item["cbor_hex"]))
    for item in floats["refused_json"]:
        write(corpus, "json_request", item["json"].encode())

    for item in load("exports.json")["files"]:
        data = bytes.fromhex(item["file_hex"])
        if len(data) <= 16384:
            write(corpus, "export", data)

    proofs = load("fork-proofs.json")
    for item in [proofs["valid"]] + proofs["invalid"]:
        data = bytes.fromhex(item["proof_hex"])
        if len(data) <= 4096:
            write(corpus, "fork_proof", data)

    for item in load("signatures.json")["single"]:
        data = bytes.fromhex(item["public_key_hex"] + item["signature_hex"] + item["message_hex"])
        write(corpus, "signature", data)
    write(corpus, "key_file", b"plexus-ed25519-secret-key-v1\n" + b"11" * 32 + b"\n")
    write(corpus, "key_file", b"plexus-ed25519-secret-key-v1\r\n " + b"aB" * 32 + b" \n\n")

    for index, kind in enumerate(KINDS):
        body = BODIES.get(kind, {})
        text = json.dumps(body).encode()
        write(corpus, "coord_body", bytes([index << 1 | 1]) + text)
        write(corpus, "json_request", json.dumps({"kind": kind, "body": body}).encode())
    write(corpus, "policy_body", b"\x01" + json.dumps(BODIES["policy"]).encode())
    write(corpus, "policy_body", b"\x01" + json.dumps({"version": 1}).encode())


if __name__ == "__main__":
    main()
