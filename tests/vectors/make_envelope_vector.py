#!/usr/bin/env python3
"""make_envelope_vector.py — writes tests/vectors/envelope-v1.json and the two
files derived from it (envelope-v1.pub.pem, envelope-v1.capture.jsonl).

This is a second, independent implementation of the signed byte layout of
docs/integrity.md (Python standard library only); the signature is made by the
`openssl pkeyutl` command line, not by plantgate's C code.  The C unit test
(tests/unit/test_envelope.c) must reproduce the bytes and the signature
exactly, so the two implementations check each other.

    tests/vectors/make_envelope_vector.py            # rewrite the files (same key)
    tests/vectors/make_envelope_vector.py --new-key  # ... with a fresh test key

THE KEY IN THE VECTOR IS A PUBLISHED TEST KEY. Never sign real data with it and
never put its public key into a production key set.
"""
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
VECTOR = os.path.join(HERE, "envelope-v1.json")

INPUTS = {
    "site": "osaka",
    "device": "press-07",
    "topic": "plant/osaka/line-3/press-07/telemetry/temp",
    "cloud_topic": "sites/osaka/line-3/press-07/telemetry/temp",
    "payload": b'{"t":21.5,"unit":"C"}',
    "seq": 4711,
    "rx_ms": 1714564800123,
    "ts_ms": 1714564800456,
}


def openssl(*args, data=None):
    return subprocess.run(["openssl"] + list(args), input=data, capture_output=True,
                          check=True).stdout


def field(b):
    return struct.pack(">I", len(b)) + b


def signed_bytes(i, kid):
    return (b"PGENV1" + field(i["site"].encode()) + field(i["device"].encode())
            + field(i["topic"].encode()) + field(i["cloud_topic"].encode())
            + field(hashlib.sha256(i["payload"]).digest())
            + field(struct.pack(">q", i["seq"])) + field(struct.pack(">q", i["rx_ms"]))
            + field(struct.pack(">q", i["ts_ms"])) + field(kid.encode()))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        key = os.path.join(tmp, "k.pem")
        if "--new-key" in sys.argv or not os.path.exists(VECTOR):
            openssl("genpkey", "-algorithm", "ed25519", "-out", key)
        else:
            with open(VECTOR) as f, open(key, "w") as k:
                k.write(json.load(f)["private_key_pem"])
        priv_pem = open(key).read()
        pub_pem = openssl("pkey", "-in", key, "-pubout").decode()
        spki = openssl("pkey", "-in", key, "-pubout", "-outform", "DER")
        kid = hashlib.sha256(spki).hexdigest()[:16]
        tbs = signed_bytes(INPUTS, kid)
        tbs_path = os.path.join(tmp, "tbs")
        with open(tbs_path, "wb") as f:
            f.write(tbs)
        sig = openssl("pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", tbs_path)
        assert len(sig) == 64
    sig_b64 = base64.b64encode(sig).decode()
    i = INPUTS
    props = [["plantgate-v", "1"], ["plantgate-site", i["site"]], ["plantgate-device", i["device"]],
             ["plantgate-topic", i["topic"]], ["plantgate-seq", str(i["seq"])],
             ["plantgate-rx", str(i["rx_ms"])], ["plantgate-ts", str(i["ts_ms"])],
             ["plantgate-kid", kid], ["plantgate-sig", sig_b64]]
    payload_b64 = base64.b64encode(i["payload"]).decode()
    wrapper = json.dumps({"v": 1, "site": i["site"], "device": i["device"], "topic": i["topic"],
                          "seq": i["seq"], "rx": i["rx_ms"], "ts": i["ts_ms"], "kid": kid,
                          "payload_b64": payload_b64, "sig": sig_b64}, separators=(",", ":"))
    vector = {
        "WARNING": "TEST KEY ONLY. This private key is public (it is in the repository). "
                   "Never sign real data with it; never add its public key to a production key set.",
        "description": "plantgate integrity envelope v1 test vector (docs/integrity.md)",
        "algorithm": "ed25519",
        "private_key_pem": priv_pem,
        "public_key_pem": pub_pem,
        "spki_der_hex": spki.hex(),
        "kid": kid,
        "inputs": {"site": i["site"], "device": i["device"], "topic": i["topic"],
                   "cloud_topic": i["cloud_topic"], "payload_b64": payload_b64,
                   "payload_utf8": i["payload"].decode(), "seq": i["seq"], "rx_ms": i["rx_ms"],
                   "ts_ms": i["ts_ms"]},
        "payload_sha256_hex": hashlib.sha256(i["payload"]).hexdigest(),
        "signed_bytes_hex": tbs.hex(),
        "signature_b64": sig_b64,
        "mqtt5_user_properties": props,
        "json_wrapper": wrapper,
    }
    with open(VECTOR, "w") as f:
        json.dump(vector, f, indent=2)
        f.write("\n")
    with open(os.path.join(HERE, "envelope-v1.pub.pem"), "w") as f:
        f.write(pub_pem)
    with open(os.path.join(HERE, "envelope-v1.capture.jsonl"), "w") as f:
        f.write(json.dumps({"topic": i["cloud_topic"], "payload_b64": payload_b64, "props": props},
                           separators=(",", ":")) + "\n")
        f.write(json.dumps({"topic": i["cloud_topic"],
                            "payload_b64": base64.b64encode(wrapper.encode()).decode(),
                            "props": []}, separators=(",", ":")) + "\n")
    print("wrote %s (kid %s)" % (VECTOR, kid))


if __name__ == "__main__":
    main()
