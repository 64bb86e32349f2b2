"""plantgate-bridge end to end: a real plant broker, a real cloud stand-in
(mosquitto with mutual TLS from a separate CA), the real bridge and its SQLite
queue.  A subscriber on `#` at the cloud sees everything that leaves the plant.

Also the home of the small helpers the other test_bridge_*.py files import
(BridgeWorld), so they share one way of wiring the pieces together.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

BRIDGE_ID = "bridge-01"


def bridge_conf(world, rules, extra="", cloud_port=None, cloud_host="127.0.0.1", cloud_ca=None):
    """The text of a bridge configuration for `world`."""
    pcrt, pkey = world.plant_pki.bridge_cert(BRIDGE_ID)
    ccrt, ckey = world.cloud_pki.bridge_cert(BRIDGE_ID)
    lines = [
        "plant_host 127.0.0.1",
        "plant_port %d" % world.plant.port,
        "plant_cafile %s" % world.plant_pki.ca,
        "plant_certfile %s" % pcrt,
        "plant_keyfile %s" % pkey,
        "plant_client_id %s" % BRIDGE_ID,
        "plant_keepalive 5s",
        "cloud_host %s" % cloud_host,
        "cloud_port %d" % (cloud_port or world.cloud.port),
        "cloud_cafile %s" % (cloud_ca or world.cloud_pki.ca),
        "cloud_certfile %s" % ccrt,
        "cloud_keyfile %s" % ckey,
        "cloud_client_id plant-hq-bridge",
        "cloud_keepalive 5s",
        "queue_path %s" % world.queue_path,
        "reconnect_min 200ms",
        "reconnect_max 1s",
        "drain_rate 0",
        "drain_inflight 50",
    ]
    if "http_listen" not in extra:
        # Tests run in parallel: never the default port.
        lines.append("http_listen 127.0.0.1:%d" % h.free_port())
    if os.geteuid() == 0 and "\nuser " not in "\n" + extra:
        # As root the bridge drops to `user` (default plantgate) after loading its
        # keys; the test's temp dirs are root's, so tests keep root, as for mosquitto.
        lines += ["user root", "allow_root yes"]
    lines += ["forward " + r for r in rules]
    return "\n".join(lines) + "\n" + extra


class BridgeWorld:
    """Plant broker + cloud broker + a cloud subscriber on `#` + a plant publisher."""

    def __init__(self, env, plant_persistence=False, plant_extra="", cloud_extra="",
                 cloud_persistence=False):
        self.env = env
        self.plant_pki = env.pki("plant")
        self.cloud_pki = env.pki("cloudpki")
        if callable(cloud_extra):  # config lines that need the cloud's PKI
            cloud_extra = cloud_extra(self.cloud_pki)
        self.plant = env.plant_broker(self.plant_pki, plugin=False, persistence=plant_persistence,
                                      extra="allow_anonymous true\nmax_queued_messages 100000\n" + plant_extra)
        if cloud_persistence:
            # The cloud keeps its subscribers' sessions across a restart, so a
            # consumer misses nothing the bridge delivers while it reconnects.
            cloud_extra = ("persistence true\npersistence_location %s/\npersistence_file cloud.db\n"
                           % env.tmp) + cloud_extra
        self.cloud = env.cloud_broker(self.cloud_pki, extra=cloud_extra)
        self.queue_path = env.path("queue.db")
        self.bridge = None
        self.sub = None

    def start_bridge(self, rules, extra="", name="bridge", env_vars=None, **kw):
        text = bridge_conf(self, rules, extra, **kw)
        self.bridge = self.env.bridge(text, name=name, extra_env=env_vars)
        return self.bridge

    def cloud_subscriber(self, filt="#", ident="consumer", clean=True):
        self.sub = self.env.client(self.cloud_pki, ident, self.cloud, clean=clean)
        assert self.sub.connect() == 0, "cloud subscriber cannot connect"
        assert self.sub.subscribe(filt, 1) == [1]
        return self.sub

    def publisher(self, ident="press-01", clean=True):
        p = self.env.client(self.plant_pki, ident, self.plant, clean=clean)
        assert p.connect() == 0, "plant publisher cannot connect"
        return p

    def wait_plant_ready(self, bridge=None, timeout=10):
        return plant_ready(bridge or self.bridge, timeout)

    def queue_count(self):
        with sqlite3.connect(self.queue_path, timeout=5) as db:
            return db.execute("SELECT count(*) FROM msg").fetchone()[0]


def plant_ready(b, timeout=10):
    """Bridge b is connected to the plant and has subscribed (the plant
    broker answered every SUBSCRIBE: before that it may drop a publish)."""
    return b.wait_log(r"event=plant\.connected", timeout) and \
        b.wait_log(r"event=plant\.subscribed rules=\d+ refused=\d+", timeout)


def seqs_of(messages):
    return [json.loads(m["payload"])["n"] for m in messages]


class Relay(unittest.TestCase):
    def test_whitelist_remap_and_nothing_else_leaves(self):
        with h.Env("br-relay") as env:
            w = BridgeWorld(env)
            sub = w.cloud_subscriber("#")
            b = w.start_bridge(["plant/hq/+/+/telemetry/# qos=1 strip=plant/ prefix=sites/",
                                "plant/hq/line2/meter/energy to=sites/hq/energy qos=0"])
            self.assertTrue(w.wait_plant_ready(), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            pub = w.publisher()
            self.assertTrue(pub.publish("plant/hq/line1/press-01/telemetry/temp", b"21.5", qos=1))
            self.assertTrue(pub.publish("plant/hq/line1/press-01/command/stop", b"x", qos=1))
            self.assertTrue(pub.publish("plant/hq/line1/press-01/config", b"x", qos=1))
            self.assertTrue(pub.publish("plant/other/line1/p/telemetry/t", b"x", qos=1))
            self.assertTrue(pub.publish("plant/hq/line2/meter/energy", b"42", qos=1))
            self.assertTrue(pub.publish("plant/hq/line1/press-01/telemetry/pressure", b"3", qos=0))
            got = sub.wait_messages(3, 30)
            time.sleep(1.0)  # anything else that might leak would have arrived by now
            got = sub.take()
            topics = sorted(m["topic"] for m in got)
            self.assertEqual(topics, ["sites/hq/energy", "sites/hq/line1/press-01/telemetry/pressure",
                                      "sites/hq/line1/press-01/telemetry/temp"], got)
            for m in got:
                self.assertIn("plantgate-seq", m["props"], m)
            temp = [m for m in got if m["topic"].endswith("temp")][0]
            self.assertEqual(temp["payload"], b"21.5")
            self.assertEqual(temp["qos"], 1)
            # Delivered means deleted from the queue.
            self.assertTrue(h.wait_for(lambda: w.queue_count() == 0, 15))
            self.assertEqual(b.stop(), 0, b.log())
            self.assertRegex(b.log(), r"event=bridge\.stopped")
            # A stopped bridge says goodbye to both brokers (MQTT DISCONNECT),
            # also with its writes buffered below TLS.
            self.assertTrue(w.plant.wait_log(r"Received DISCONNECT from %s" % BRIDGE_ID, 10),
                            w.plant.log()[-2000:])
            self.assertTrue(w.cloud.wait_log(r"Received DISCONNECT from plant-hq-bridge", 10),
                            w.cloud.log()[-2000:])

    def test_cloud_outage_all_delivered_in_order(self):
        with h.Env("br-outage") as env:
            w = BridgeWorld(env, cloud_persistence=True)
            b = w.start_bridge(["plant/+/+/+/telemetry/# qos=1"])
            self.assertTrue(w.wait_plant_ready(), b.log())
            sub = w.cloud_subscriber("plant/#", clean=False)
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            pub = w.publisher()
            topics = ["plant/hq/l1/a/telemetry/x", "plant/hq/l1/b/telemetry/y"]
            n = 0
            for _ in range(50):
                self.assertTrue(pub.publish(topics[n % 2], json.dumps({"n": n}), qos=1))
                n += 1
            sub.wait_messages(50, 30)
            w.cloud.stop()
            for _ in range(300):
                self.assertTrue(pub.publish(topics[n % 2], json.dumps({"n": n}), qos=1))
                n += 1
            self.assertTrue(b.wait_log(r"event=cloud\.(disconnected|connect_failed)", 10), b.log())
            # The plant broker acknowledged the 300 to the publisher; the bridge
            # commits them in its own time (the ASan bridge can be a second behind).
            self.assertTrue(h.wait_for(lambda: w.queue_count() > 0, 15), b.log()[-3000:])
            time.sleep(1.5)
            w.cloud.start()
            self.assertEqual(sub.connect(), 0)
            got = sub.wait_unique(lambda m: json.loads(m["payload"])["n"], n)
            seqs = seqs_of(got)
            missing = sorted(set(range(n)) - set(seqs))
            self.assertEqual(missing, [], b.log()[-3000:])
            for t in topics:  # per-topic order, duplicates aside
                per = [json.loads(m["payload"])["n"] for m in got if m["topic"] == t]
                dedup = [x for i, x in enumerate(per) if x not in per[:i]]
                self.assertEqual(dedup, sorted(dedup), t)
            # The bridge's own seq ids rise with the plant's order too.
            bseq = [int(m["props"]["plantgate-seq"]) for m in got]
            self.assertEqual(len(set(bseq)), len(set(seqs)))
            # One log line for the outage, not one per attempt.
            self.assertLessEqual(len([l for l in b.log().splitlines()
                                      if "event=cloud.connect_failed" in l]), 2, b.log())
            self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
