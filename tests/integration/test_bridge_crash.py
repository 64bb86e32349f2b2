"""plantgate-bridge killed with SIGKILL again and again under a steady QoS 1
stream, against two cloud brokers: mosquitto (MQTT 5; the sequence id travels
as the user property plantgate-seq) and aedes, a non-mosquitto MQTT 3.1.1
broker on node (the sequence id travels in the signed JSON wrapper).

The persist-before-acknowledge loop must lose nothing: every message the
plant publisher sent arrives at the cloud.  Duplicates with the *same*
sequence id (a resend: the cloud's PUBACK or the delete did not make it
before the kill) are allowed and recognisable by the consumer.  A duplicate
under a *new* sequence id would look like new data: after a kill the plant
broker redelivers what the bridge had stored but not yet acknowledged, and
the bridge must recognise it (issue 12, item 2) -- there must be none.

Each run prints: sent, received, missing, duplicates, duplicates under a new
seq.  PG_BRIDGE_KILLS sets the number of kills (default 20; 10 under ASan).
aedes is installed with npm into the test's temporary directory; if that
fails (no node, npm or registry), the test fails and says so."""
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_relay import BridgeWorld  # noqa: E402

KILLS = int(os.environ.get("PG_BRIDGE_KILLS", "10" if h.ASAN else "20"))
RULES = ["plant/+/+/+/telemetry/# qos=1 strip=plant/ prefix=sites/"]
TOPICS = ["plant/hq/l1/a/telemetry/x", "plant/hq/l1/b/telemetry/y"]

AEDES_SERVER = r"""
import { Aedes } from 'aedes';
import fs from 'node:fs';
import tls from 'node:tls';
const [cert, key, ca, portfile] = process.argv.slice(2);
const broker = await Aedes.createBroker();
// Mutual TLS: only clients with a certificate from the cloud CA.
const server = tls.createServer({cert: fs.readFileSync(cert), key: fs.readFileSync(key),
                                 ca: fs.readFileSync(ca), requestCert: true,
                                 rejectUnauthorized: true}, broker.handle);
server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(portfile + '.tmp', String(server.address().port));
  fs.renameSync(portfile + '.tmp', portfile);
  console.log('aedes listening on 127.0.0.1:' + server.address().port);
});
process.on('SIGTERM', () => { server.close(); broker.close(() => process.exit(0)); });
"""


class Aedes:
    """aedes (npm) on a free 127.0.0.1 port with mutual TLS from the cloud PKI."""

    host = "127.0.0.1"

    def __init__(self, env, pki):
        node, npm = shutil.which("node"), shutil.which("npm")
        if not node or not npm:
            raise AssertionError("node and npm are needed for the aedes cloud broker "
                                 "(scripts/deps installs them)")
        d = env.path("aedes")
        os.makedirs(d)
        with open(os.path.join(d, "package.json"), "w") as f:
            f.write('{"name": "pg-aedes-cloud", "private": true, "type": "module"}\n')
        p = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                            "aedes@1"], cwd=d, capture_output=True, text=True, timeout=180)
        if p.returncode != 0:
            raise AssertionError("cannot install aedes from npm (is the npm registry "
                                 "reachable?):\n" + p.stdout[-2000:] + p.stderr[-2000:])
        script = os.path.join(d, "cloud.mjs")
        with open(script, "w") as f:
            f.write(AEDES_SERVER)
        cert, key = pki.server("localhost")
        portfile = os.path.join(d, "port")
        self.proc = h.Proc(env, "aedes", [node, script, cert, key, pki.ca, portfile])
        if not h.wait_for(lambda: os.path.exists(portfile), 30):
            raise AssertionError("aedes did not start:\n" + self.proc.log())
        with open(portfile) as f:
            self.port = int(f.read())


class Publisher(threading.Thread):
    """Publishes {"n": i} at QoS 1, each acknowledged by the plant broker."""

    def __init__(self, client, topics):
        super().__init__(daemon=True)
        self.client = client
        self.topics = topics
        self.sent = 0
        self.failed = 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            n = self.sent
            if self.client.publish(self.topics[n % len(self.topics)], json.dumps({"n": n}), qos=1,
                                   timeout=5):
                self.sent += 1
            else:
                self.failed += 1
                time.sleep(0.05)
            time.sleep(0.001)


def decode_mqtt5(m):
    """(n, seq) of a message from mosquitto: plantgate-seq as user property."""
    return json.loads(m["payload"])["n"], int(m["props"]["plantgate-seq"])


def decode_wrapped(m):
    """(n, seq) of a message from aedes: the signed JSON wrapper of MQTT 3.1.1."""
    w = json.loads(m["payload"])
    return json.loads(base64.b64decode(w["payload_b64"]))["n"], int(w["seq"])


def sigkill_loop(bridge, restart, kills, seed, up=(0.3, 1.2)):
    """kill -9 the bridge `kills` times, each after `up` seconds (random in
    the range) of running; restart() starts the next one.  Returns the last."""
    rnd = random.Random(seed)
    for _ in range(kills):
        time.sleep(rnd.uniform(*up))
        bridge.kill()
        time.sleep(rnd.uniform(0.0, 0.3))
        bridge = restart()
    return bridge


class Crash(unittest.TestCase):
    def kill_loop(self, env, w, cloud, decode, protocol=5, extra=""):
        sub = env.client(w.cloud_pki, "consumer", cloud, protocol=protocol)
        self.assertEqual(sub.connect(), 0, "cloud subscriber cannot connect")
        self.assertEqual(sub.subscribe("sites/#", 1), [1])
        b = w.start_bridge(RULES, extra=extra, cloud_port=cloud.port)
        self.assertTrue(w.wait_plant_ready(b), b.log())
        self.assertTrue(b.wait_log(r"event=cloud\.connected", 15), b.log())
        pub = Publisher(w.publisher(), TOPICS)
        pub.start()
        b = sigkill_loop(b, lambda: w.start_bridge(RULES, extra=extra, cloud_port=cloud.port),
                         KILLS, 5)
        time.sleep(1.0)
        pub.stop_ev.set()
        pub.join(10)
        sent = pub.sent
        got = sub.wait_unique(lambda m: decode(m)[0], sent)
        pairs = [decode(m) for m in got]
        nums = [n for n, _ in pairs]
        seqs_of = {}
        for n, seq in pairs:
            seqs_of.setdefault(n, set()).add(seq)
        missing = sorted(set(range(sent)) - set(nums))
        dups = len(nums) - len(set(nums))
        new_seq = sum(len(s) - 1 for s in seqs_of.values())
        h.log("kill -9 x%d, cloud %s: sent=%d received=%d missing=%d duplicates=%d "
              "duplicates_under_new_seq=%d publish_retries=%d"
              % (KILLS, type(cloud).__name__, sent, len(nums), len(missing), dups, new_seq,
                 pub.failed))
        self.assertGreater(sent, 100)
        self.assertEqual(missing, [], "lost messages: %s" % missing[:50])
        self.assertEqual(new_seq, 0, "stored again under a new seq: %s"
                         % sorted((n, sorted(s)) for n, s in seqs_of.items() if len(s) > 1)[:20])
        # Per topic, ignoring duplicates, the order is kept, and so is the
        # order of the sequence ids.
        for topic in ("sites/hq/l1/a/telemetry/x", "sites/hq/l1/b/telemetry/y"):
            per = [decode(m) for m in got if m["topic"] == topic]
            first, seen = [], set()
            for n, seq in per:
                if n not in seen:
                    seen.add(n)
                    first.append((n, seq))
            self.assertEqual(first, sorted(first), topic)
            self.assertEqual([s for _, s in first], sorted(s for _, s in first), topic)
        self.assertEqual(b.stop(), 0, b.log()[-3000:])
        self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 5))
        return b

    def test_sigkill_loop_mosquitto(self):
        with h.Env("br-crash") as env:
            w = BridgeWorld(env)
            b = self.kill_loop(env, w, w.cloud, decode_mqtt5)
            h.log("redeliveries recognised after the kills: %d"
                  % b.log().count("event=plant.redelivered"))

    def test_sigkill_loop_aedes(self):
        with h.Env("br-crash-aedes") as env:
            w = BridgeWorld(env)
            cloud = Aedes(env, w.cloud_pki)
            key = os.path.join(env.path("signing"), "private", "bridge-01.sign.key")
            p = subprocess.run([h.PKI_SCRIPT, "--dir", env.path("signing"), "signing-key",
                                "bridge-01"], capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.kill_loop(env, w, cloud, decode_wrapped, protocol=4,
                           extra="cloud_protocol 3.1.1\nsite_id hq\nsign_key %s\n" % key)


if __name__ == "__main__":
    unittest.main(verbosity=2)
