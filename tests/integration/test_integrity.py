"""The integrity envelope end to end (docs/integrity.md): devices publish
through the plant broker WITH the plugin (which stamps the verified sender),
the bridge signs each message with its own key, and plantgate-verify — live on
the cloud broker and on a recorded capture — reports every message OK with the
right device.  A message altered at the cloud broker is TAMPERED (and what
changed is named), a message missing from the sequence is a gap (removed from
a capture, or deleted from the bridge's queue before it was sent), a resend is
a duplicate, a rotated key verifies when the cloud team holds both public
keys, the MQTT 3.1.1 JSON wrapper verifies, and the repository's test vector
verifies with the tool.  One recorded message is also verified by a few lines
of Python following the spec alone (any language can verify).
"""
import base64
import hashlib
import json
import os
import sqlite3
import stat
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from test_bridge_relay import bridge_conf, plant_ready  # noqa: E402

SITE = "osaka"
RULE = "plant/osaka/+/+/telemetry/# strip=plant/ prefix=sites/ qos=1"

POLICY = """
default deny
unknown-devices refuse

role sensor
  publish plant/%{site}/%{line}/%{id}/telemetry/# qos<=1 retain=no
end

role bridge
  subscribe plant/+/+/+/telemetry/# qos<=1
  read      plant/+/+/+/telemetry/#
end

device press-07  role sensor site=osaka line=line-3
device press-08  role sensor site=osaka line=line-3
device bridge-01 role bridge
"""


def verify_path():
    name = "plantgate-verify-asan" if h.ASAN else "plantgate-verify"
    return os.path.join(h.BUILD, "bridge", name)


def run_verify(*args, timeout=60):
    """plantgate-verify on a file: (exit code, stdout, stderr)."""
    p = subprocess.run([verify_path()] + list(args), capture_output=True, text=True,
                       timeout=timeout)
    assert "Sanitizer" not in p.stderr and "runtime error:" not in p.stderr, p.stderr
    return p.returncode, p.stdout, p.stderr


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def summary(out):
    return out.strip().splitlines()[-1]


def verdicts(out):
    return [line.split()[0] for line in out.splitlines()
            if line.split() and line.split()[0] in ("OK", "DUPLICATE", "TAMPERED", "UNSIGNED",
                                                   "UNKNOWN-KEY")]


class World:
    """Plant broker with the plugin, cloud broker, a signing key, a bridge."""

    def __init__(self, env):
        self.env = env
        self.plant_pki = env.pki("plant")
        self.cloud_pki = env.pki("cloudpki")
        self.plant = env.plant_broker(self.plant_pki, policy=POLICY)
        self.cloud = env.cloud_broker(self.cloud_pki)
        self.queue_path = env.path("queue.db")
        self.sign_dir = env.path("signing")
        self.keys = os.path.join(self.sign_dir, "signing")  # the public key set
        self.bridge = None
        self.n_bridges = 0

    def signing_key(self, name="bridge-01"):
        p = subprocess.run([h.PKI_SCRIPT, "--dir", self.sign_dir, "signing-key", name],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return os.path.join(self.sign_dir, "private", name + ".sign.key")

    def start_bridge(self, key, extra=""):
        signing = ("site_id %s\nsign_key %s\n" % (SITE, key)) if key else ""
        text = bridge_conf(self, [RULE], signing + extra)
        self.n_bridges += 1
        self.bridge = self.env.bridge(text, name="bridge%d" % self.n_bridges)
        assert plant_ready(self.bridge, 15), self.bridge.log()
        return self.bridge

    def device(self, ident):
        d = self.env.client(self.plant_pki, ident, self.plant)
        assert d.connect() == 0, "device %s cannot connect" % ident
        return d

    def verifier(self, count, extra=(), name="verify", duration=40):
        """plantgate-verify subscribed to the cloud; returns once it has subscribed."""
        crt, key = self.cloud_pki.device("verifier-" + name)
        argv = [verify_path(), "--keys", self.keys, "--site", SITE,
                "--broker", "127.0.0.1:%d" % self.cloud.port, "--cafile", self.cloud_pki.ca,
                "--cert", crt, "--key", key, "--client-id", "verifier-" + name,
                "--topic", "sites/#", "--count", str(count), "--duration", str(duration)]
        p = h.Proc(self.env, name, argv + list(extra))
        assert p.wait_log(r"plantgate-verify: subscribed", 15), p.log()
        return p

    def queue_seqs(self):
        with sqlite3.connect(self.queue_path, timeout=5) as db:
            return [r[0] for r in db.execute("SELECT seq FROM msg ORDER BY seq")]


def finish(proc, timeout=40):
    rc = proc.wait(timeout)
    assert rc is not None, "plantgate-verify did not finish:\n" + proc.log()
    return rc, proc.log()


def publish_telemetry(dev, n, start=0, props=None):
    for i in range(start, start + n):
        topic = "plant/osaka/line-3/%s/telemetry/temp" % dev.clientid
        assert dev.publish(topic, json.dumps({"n": i, "t": 20 + i}), qos=1, props=props)


def spec_verify(line, pub_pem_path):
    """Verify one capture line following docs/integrity.md only (Python)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key, Encoding, \
        PublicFormat
    m = json.loads(line)
    p = dict(m["props"])
    payload = base64.b64decode(m["payload_b64"])
    pub = load_pem_public_key(read(pub_pem_path, "rb"))
    spki = pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert hashlib.sha256(spki).hexdigest()[:16] == p["plantgate-kid"]

    def f(b):
        return struct.pack(">I", len(b)) + b
    tbs = (b"PGENV1" + f(p["plantgate-site"].encode()) + f(p["plantgate-device"].encode())
           + f(p["plantgate-topic"].encode()) + f(m["topic"].encode())
           + f(hashlib.sha256(payload).digest())
           + f(struct.pack(">Q", int(p["plantgate-seq"])))
           + f(struct.pack(">Q", int(p["plantgate-rx"])))
           + f(struct.pack(">Q", int(p["plantgate-ts"]))) + f(p["plantgate-kid"].encode()))
    pub.verify(base64.b64decode(p["plantgate-sig"]), tbs)  # raises if invalid


class Integrity(unittest.TestCase):
    def test_signed_relay_verifies_live_and_from_capture(self):
        with h.Env("int-relay") as env:
            w = World(env)
            key = w.signing_key()
            cap = env.path("capture.jsonl")
            v = w.verifier(12, ["--record", cap])
            b = w.start_bridge(key)
            self.assertTrue(b.wait_log(r"event=bridge\.signing site=osaka kid=[0-9a-f]{16} "
                                       r"algorithm=ed25519"), b.log())
            d7, d8 = w.device("press-07"), w.device("press-08")
            publish_telemetry(d7, 5)
            # A device that claims to be another: the plugin replaces the claim.
            publish_telemetry(d7, 1, start=5, props={"plantgate-device": "press-08"})
            publish_telemetry(d8, 6)
            rc, out = finish(v)
            self.assertEqual(rc, 0, out)
            self.assertIn("12 verified, 0 tampered, 0 unsigned, 0 gaps, 0 duplicates", out)
            ok = [l for l in out.splitlines() if l.startswith("OK ")]
            self.assertEqual(len(ok), 12, out)
            self.assertEqual(len([l for l in ok if 'device="press-07"' in l
                                  and "/press-07/" in l]), 6, out)
            self.assertEqual(len([l for l in ok if 'device="press-08"' in l
                                  and "/press-08/" in l]), 6, out)
            self.assertIn('site="osaka"', ok[0])
            self.assertIn('topic="plant/osaka/line-3/press-07/telemetry/temp"', ok[0])
            self.assertIn('cloud_topic="sites/osaka/line-3/press-07/telemetry/temp"', ok[0])
            self.assertNotIn("event=bridge.unsigned", b.log())

            # The recorded capture verifies the same way, offline.
            lines = read(cap).splitlines()
            self.assertEqual(len(lines), 12)
            rc, out, err = run_verify("--keys", w.keys, "--site", SITE, "--file", cap)
            self.assertEqual(rc, 0, out + err)
            self.assertEqual(summary(out), "12 verified, 0 tampered, 0 unsigned, 0 gaps, "
                                           "0 duplicates")
            # ... and by the spec alone, in another language.
            spec_verify(lines[0], os.path.join(w.keys, "bridge-01.pub"))

            # A message dropped from the stream is a gap; a resend a duplicate.
            seqs = [int(dict(json.loads(l)["props"])["plantgate-seq"]) for l in lines]
            gap = env.write("gap.jsonl", "\n".join(lines[:4] + lines[5:]) + "\n")
            rc, out, _ = run_verify("--keys", w.keys, "--file", gap)
            self.assertEqual(rc, 1, out)
            self.assertEqual(summary(out), "11 verified, 0 tampered, 0 unsigned, 1 gaps "
                                           "(missing seq %d), 0 duplicates" % seqs[4])
            dup = env.write("dup.jsonl", "\n".join(lines + lines[3:5]) + "\n")
            rc, out, _ = run_verify("--keys", w.keys, "--file", dup)
            self.assertEqual(rc, 0, out)
            self.assertEqual(summary(out), "14 verified, 0 tampered, 0 unsigned, 0 gaps, "
                                           "2 duplicates")
            # Out of order is not a gap once the late one arrives.
            late = env.write("late.jsonl", "\n".join(lines[:4] + lines[5:] + lines[4:5]) + "\n")
            rc, out, _ = run_verify("--keys", w.keys, "--file", late)
            self.assertEqual((rc, summary(out)), (0, "12 verified, 0 tampered, 0 unsigned, "
                                                     "0 gaps, 0 duplicates"), out)
            # Another site's expectation: refused.
            rc, out, _ = run_verify("--keys", w.keys, "--site", "kyoto", "--file", cap)
            self.assertEqual(rc, 1)
            self.assertIn("not the expected kyoto", out)
            self.assertEqual(b.stop(), 0, b.log())

    def test_altered_at_the_cloud_is_tampered(self):
        with h.Env("int-tamper") as env:
            w = World(env)
            key = w.signing_key()
            v = w.verifier(6)
            # Someone with access to the cloud broker republishes the message.
            mallory = env.client(w.cloud_pki, "mallory", w.cloud)
            self.assertEqual(mallory.connect(), 0)
            self.assertEqual(mallory.subscribe("sites/#", 1), [1])
            w.start_bridge(key)
            d7 = w.device("press-07")
            publish_telemetry(d7, 1)
            got = mallory.wait_messages(1, 15)
            self.assertEqual(len(got), 1)
            orig = got[0]
            self.assertEqual(orig["props"]["plantgate-device"], "press-07")
            topic, props = orig["topic"], dict(orig["props"])
            self.assertTrue(mallory.publish(topic, b'{"n":0,"t":99}', qos=1, props=props))
            forged = dict(props, **{"plantgate-device": "press-08"})
            self.assertTrue(mallory.publish(topic, orig["payload"], qos=1, props=forged))
            self.assertTrue(mallory.publish(topic.replace("press-07", "press-08"),
                                            orig["payload"], qos=1, props=props))
            unsigned = {k: x for k, x in props.items() if k != "plantgate-sig" and
                        k != "plantgate-v"}
            self.assertTrue(mallory.publish(topic, orig["payload"], qos=1, props=unsigned))
            # The genuine envelope behind 80 other properties, plus a second
            # plantgate-device for consumers that read the last one.
            pr = Properties(PacketTypes.PUBLISH)
            pr.UserProperty = ([("junk-%d" % i, "x") for i in range(80)] + list(props.items())
                               + [("plantgate-device", "press-08")])
            mallory.c.publish(topic, orig["payload"], qos=1, properties=pr).wait_for_publish(5)
            rc, out = finish(v)
            self.assertEqual(rc, 1, out)
            self.assertEqual(verdicts(out), ["OK", "TAMPERED", "TAMPERED", "TAMPERED",
                                             "UNSIGNED", "TAMPERED"], out)
            self.assertIn("plantgate-device appears more than once", out)
            tampered = [l for l in out.splitlines() if l.startswith("TAMPERED")]
            self.assertIn('reason="payload changed"', tampered[0])
            self.assertIn("device changed (signed 'press-07', received 'press-08')", tampered[1])
            self.assertIn("cloud topic changed", tampered[2])
            self.assertIn("1 verified, 4 tampered, 1 unsigned, 0 gaps, 0 duplicates", out)

    def test_gap_when_a_queued_message_is_deleted(self):
        with h.Env("int-gap") as env:
            w = World(env)
            key = w.signing_key()
            w.cloud.stop()  # the WAN is down: everything stays queued
            b = w.start_bridge(key)
            d7 = w.device("press-07")
            publish_telemetry(d7, 5)
            self.assertTrue(h.wait_for(lambda: len(w.queue_seqs()) == 5, 30), b.log())
            self.assertEqual(b.stop(), 0, b.log())
            seqs = w.queue_seqs()
            with sqlite3.connect(w.queue_path) as db:  # someone removes one message
                db.execute("DELETE FROM msg WHERE seq = ?", (seqs[2],))
            w.cloud.start()
            v = w.verifier(4)
            w.start_bridge(key)
            rc, out = finish(v)
            self.assertEqual(rc, 1, out)
            self.assertIn("4 verified, 0 tampered, 0 unsigned, 1 gaps (missing seq %d), "
                          "0 duplicates" % seqs[2], out)

    def test_key_rotation(self):
        with h.Env("int-rotate") as env:
            w = World(env)
            old = w.signing_key("bridge-01")
            # Rotation, step 1: the new key is made and its public half goes to
            # the cloud team (it is in signing/ now) before the bridge uses it.
            new = w.signing_key("bridge-01-2025")
            cap = env.path("capture.jsonl")
            v = w.verifier(6, ["--record", cap])
            b = w.start_bridge(old)
            d7 = w.device("press-07")
            publish_telemetry(d7, 3)
            self.assertTrue(h.wait_for(lambda: read(cap).count("\n") == 3, 15), v.log())
            # Step 2: the bridge switches to the new private key.
            self.assertEqual(b.stop(), 0)
            w.start_bridge(new)
            publish_telemetry(d7, 3, start=3)
            rc, out = finish(v)
            self.assertEqual(rc, 0, out)
            self.assertIn("6 verified, 0 tampered, 0 unsigned, 0 gaps, 0 duplicates", out)
            kids = {l.split("kid=")[1].split()[0] for l in out.splitlines() if l.startswith("OK")}
            self.assertEqual(len(kids), 2, out)
            # A verifier that only has the old key flags the new messages.
            rc, out, _ = run_verify("--keys", os.path.join(w.keys, "bridge-01.pub"), "--file", cap)
            self.assertEqual(rc, 1)
            self.assertEqual(verdicts(out), ["OK"] * 3 + ["UNKNOWN-KEY"] * 3, out)
            self.assertIn("3 verified, 0 tampered, 0 unsigned, 3 unknown-key, 0 gaps", out)

    def test_mqtt311_json_wrapper(self):
        with h.Env("int-311") as env:
            w = World(env)
            key = w.signing_key()
            cap = env.path("capture.jsonl")
            v = w.verifier(3, ["--protocol", "3.1.1", "--record", cap])
            w.start_bridge(key, "cloud_protocol 3.1.1\n")
            d7 = w.device("press-07")
            publish_telemetry(d7, 3)
            rc, out = finish(v)
            self.assertEqual(rc, 0, out)
            self.assertIn("3 verified, 0 tampered, 0 unsigned, 0 gaps, 0 duplicates", out)
            self.assertIn('device="press-07"', out)
            first = json.loads(read(cap).splitlines()[0])
            wrapper = json.loads(base64.b64decode(first["payload_b64"]))
            self.assertEqual(sorted(wrapper), sorted(["v", "site", "device", "topic", "seq", "rx",
                                                      "ts", "kid", "payload_b64", "sig"]))
            self.assertEqual(json.loads(base64.b64decode(wrapper["payload_b64"]))["n"], 0)
            # The wrapped payload, changed by one byte, no longer verifies.
            wrapper["payload_b64"] = base64.b64encode(b'{"n": 0, "t": 21}').decode()
            first["payload_b64"] = base64.b64encode(json.dumps(wrapper).encode()).decode()
            bad = env.write("bad.jsonl", json.dumps(first) + "\n")
            rc, out, _ = run_verify("--keys", w.keys, "--file", bad)
            self.assertEqual(rc, 1)
            self.assertEqual(verdicts(out), ["TAMPERED"], out)

    def test_signing_key_checks_and_unsigned_warning(self):
        with h.Env("int-keys") as env:
            w = World(env)
            key = w.signing_key()
            conf = env.write("b.conf", bridge_conf(w, [RULE], "site_id osaka\nsign_key %s\n" % key))
            bridge = h.bridge_path()
            p = subprocess.run([bridge, "-n", "-c", conf], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            os.chmod(key, 0o640)
            p = subprocess.run([bridge, "-n", "-c", conf], capture_output=True, text=True)
            self.assertEqual(p.returncode, 1)
            self.assertIn("sign_key '%s': mode 0640" % key, p.stderr)
            self.assertIn("chmod 600", p.stderr)
            b = env.bridge(read(conf), name="loose")
            self.assertEqual(b.wait(15), 1, b.log())
            self.assertIn("mode 0640", b.log())
            os.chmod(key, 0o400)
            p = subprocess.run([bridge, "-n", "-c", conf], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            # Without a key the bridge runs and says once why that is a loss.
            b = w.start_bridge(None)
            sub = env.client(w.cloud_pki, "consumer", w.cloud)
            self.assertEqual(sub.connect(), 0)
            self.assertEqual(sub.subscribe("sites/#", 1), [1])
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
            publish_telemetry(w.device("press-07"), 2)
            got = sub.wait_messages(2, 15)
            self.assertEqual(len(got), 2)
            self.assertNotIn("plantgate-sig", got[0]["props"])
            self.assertEqual(b.log().count("event=bridge.unsigned"), 1, b.log())
            cap = env.write("unsigned.jsonl", "".join(
                json.dumps({"topic": m["topic"], "payload_b64": base64.b64encode(m["payload"]).decode(),
                            "props": list(m["props"].items())}) + "\n" for m in got))
            rc, out, _ = run_verify("--keys", w.keys, "--file", cap)
            self.assertEqual(rc, 1)
            self.assertEqual(summary(out), "0 verified, 0 tampered, 2 unsigned, 0 gaps, "
                                           "0 duplicates")

    def test_repository_vector_verifies_with_the_tool(self):
        vec_dir = os.path.join(h.ROOT, "tests", "vectors")
        pub = os.path.join(vec_dir, "envelope-v1.pub.pem")
        rc, out, err = run_verify("--keys", pub, "--site", "osaka", "--file",
                                  os.path.join(vec_dir, "envelope-v1.capture.jsonl"))
        self.assertEqual(rc, 0, out + err)
        # Line 1: MQTT 5 properties; line 2: the same message as a JSON wrapper.
        self.assertEqual(verdicts(out), ["OK", "DUPLICATE"], out)
        self.assertIn("seq=4711", out)
        self.assertIn('device="press-07"', out)
        # The capture is the vector's message, and the key the vector's key.
        vec = json.loads(read(os.path.join(vec_dir, "envelope-v1.json")))
        self.assertIn("TEST KEY ONLY", vec["WARNING"])
        first = json.loads(read(os.path.join(vec_dir, "envelope-v1.capture.jsonl")).splitlines()[0])
        self.assertEqual(first["props"], vec["mqtt5_user_properties"])
        self.assertEqual(first["topic"], vec["inputs"]["cloud_topic"])
        self.assertEqual(read(pub), vec["public_key_pem"])
        spec_verify(json.dumps(first), pub)
        # A key set without the vector's key: unknown key.
        with h.Env("int-vector") as env:
            other = env.path("other")
            subprocess.run([h.PKI_SCRIPT, "--dir", other, "signing-key", "x"], check=True,
                           capture_output=True)
            rc, out, _ = run_verify("--keys", os.path.join(other, "signing"), "--file",
                                    os.path.join(vec_dir, "envelope-v1.capture.jsonl"))
            self.assertEqual(rc, 1)
            self.assertEqual(verdicts(out), ["UNKNOWN-KEY", "UNKNOWN-KEY"], out)
            rc, _, err = run_verify("--keys", os.path.join(other, "signing"))
            self.assertEqual(rc, 2)
            self.assertIn("either --broker", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
