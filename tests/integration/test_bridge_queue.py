"""The bridge's queue under pressure: plant broker restarts, the queue limit
in each policy (backpressure, drop-oldest), a full disk, a corrupt queue file
at start; plus `-n` and SIGHUP reload of the forward rules.  Every reason the
bridge stops reading shows in /healthz, /metrics and the status page's data."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_http import get, parse_metrics  # noqa: E402
from test_bridge_relay import BridgeWorld, bridge_conf, seqs_of  # noqa: E402
from test_bridge_status_page import _WsClient  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]
TOPIC = "plant/l1/telemetry/t"


def publish_n(pub, start, n, size=0):
    for i in range(start, start + n):
        body = {"n": i}
        if size:
            body["pad"] = "x" * size
        assert pub.publish(TOPIC, json.dumps(body), qos=1), "publish %d failed" % i


def http_extra():
    """(bridge config line, port) for the HTTP endpoints on a free port."""
    port = h.free_port()
    return "http_listen 127.0.0.1:%d\n" % port, port


def assert_blocked(test, port, reason, words):
    """The stall shows everywhere an operator looks: /healthz is 503 and says
    why in words, /metrics has ingest_blocked 1 and the reason label, and the
    status page's WebSocket data names the reason."""
    status, body, _ = get(port, "/healthz")
    test.assertEqual(status, 503, body)
    test.assertIn("not reading from the plant broker", body)
    test.assertIn(words, body)
    values, _, _ = parse_metrics(get(port, "/metrics")[1])
    test.assertEqual(values["plantgate_bridge_ingest_blocked"], 1)
    test.assertEqual(values['plantgate_bridge_ingest_blocked_reason{reason="%s"}' % reason], 1)
    ws = _WsClient("ws://127.0.0.1:%d/ws" % port)
    try:
        msg = {}
        while msg.get("type") != "sample":  # the history first, then a sample a second
            msg = json.loads(ws.recv())
    finally:
        ws.close()
    test.assertIn(reason, msg["blocked_by"], msg)
    test.assertIn(words, msg["reason"])


class PlantRestart(unittest.TestCase):
    def test_plant_broker_restart_nothing_lost(self):
        with h.Env("br-plant-restart") as env:
            w = BridgeWorld(env, plant_persistence=True)
            sub = w.cloud_subscriber("#")
            b = w.start_bridge(RULES)
            self.assertTrue(w.wait_plant_ready(b), b.log())
            pub = w.publisher("press-01")
            publish_n(pub, 0, 200)
            w.plant.restart()
            self.assertTrue(b.wait_log(r"event=plant\.disconnected", 10), b.log())
            self.assertTrue(h.wait_for(lambda: b.log().count("event=plant.connected") >= 2, 15),
                            b.log())
            pub2 = w.publisher("press-02")
            publish_n(pub2, 200, 200)
            sub.wait_unique(lambda m: json.loads(m["payload"])["n"], 400)
            got = set(seqs_of(sub.messages))
            self.assertEqual(sorted(set(range(400)) - got), [], b.log()[-2000:])
            self.assertEqual(b.stop(), 0)


class QueueLimits(unittest.TestCase):
    def fill_with_cloud_down(self, env, w, policy, n=200, limit=50, extra=""):
        sub = w.cloud_subscriber("#", clean=False)
        b = w.start_bridge(RULES, extra="queue_max_messages %d\nqueue_when_full %s\n%s"
                           % (limit, policy, extra))
        self.assertTrue(w.wait_plant_ready(b), b.log())
        self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
        w.cloud.stop()
        pub = w.publisher()
        publish_n(pub, 0, n)  # the plant broker acknowledges all of them either way
        return sub, b

    def test_backpressure_plant_broker_holds_the_rest(self):
        with h.Env("br-q-bp") as env:
            w = BridgeWorld(env, cloud_persistence=True)
            http, port = http_extra()
            # More than the limit plus the documented overshoot (docs/bridge.md:
            # at most 512 over, the batch being committed and the one read
            # meanwhile, each at most the Receive Maximum of 256), so that the
            # plant broker must hold some whatever the timing.
            n = 50 + 512 + 200
            sub, b = self.fill_with_cloud_down(env, w, "backpressure", n=n, extra=http)
            self.assertTrue(b.wait_log(r"event=queue\.full policy=backpressure", 10), b.log())
            # The batch being committed when the line was logged, and the one
            # read meanwhile, still land; wait until the count holds still
            # for half a second (a slow commit under ASan can take longer).
            def settled():
                a = w.queue_count()
                time.sleep(0.5)
                return a if w.queue_count() == a else None
            queued = h.wait_for(settled, 10 * h.SLOW)
            self.assertIsNotNone(queued, "the queue never stopped growing")
            self.assertGreaterEqual(queued, 50)
            self.assertLessEqual(queued, 50 + 512)
            time.sleep(1)
            self.assertEqual(w.queue_count(), queued, "the bridge went on reading while full")
            assert_blocked(self, port, "queue_full", "the queue is full")
            w.cloud.start()
            self.assertEqual(sub.connect(), 0)
            sub.wait_unique(lambda m: json.loads(m["payload"])["n"], n)
            got = seqs_of(sub.messages)
            self.assertEqual(sorted(set(range(n)) - set(got)), [], b.log()[-2000:])
            self.assertTrue(b.wait_log(r"event=queue\.accepting", 10), b.log())
            self.assertNotIn("dropped_oldest count", b.log())
            # Draining the held messages through a limit of 50 stops reading
            # again with each batch; the log says so once per episode, not
            # once per batch (queue.accepting after 3 s with room).
            self.assertEqual(b.log().count("event=queue.full"), 1, b.log())
            self.assertEqual(b.log().count("event=queue.accepting"), 1, b.log())
            values, _, _ = parse_metrics(get(port, "/metrics")[1])
            self.assertEqual(values["plantgate_bridge_ingest_blocked"], 0)
            self.assertEqual(b.stop(), 0)

    def test_drop_oldest_keeps_newest_and_says_so(self):
        with h.Env("br-q-drop") as env:
            w = BridgeWorld(env, cloud_persistence=True)
            # The limit is above the largest batch the bridge commits at once
            # (the Receive Maximum of 256: the plant link frames all that one
            # read brings, so under load a batch can be that large): the batch
            # being committed is never dropped, so with a limit of 100 a batch
            # of 134 left 134 (it did under load).  Above it, exactly the
            # newest `limit` stay.
            sub, b = self.fill_with_cloud_down(env, w, "drop-oldest", n=900, limit=300)

            def dropped():
                return sum(int(l.split("count=")[1].split()[0]) for l in b.log().splitlines()
                           if "event=queue.dropped_oldest" in l)
            # The plant broker acknowledged all 900; the bridge takes them in
            # batches, so wait until it has dropped all it should (or more).
            h.wait_progress(dropped, 600, stall=15)
            time.sleep(0.5)
            self.assertEqual(dropped(), 600, b.log())
            # A summary, not a line per commit: 600 evictions took at least
            # three commits (at most 256 messages each); logged at once, then
            # within 5 s.
            lines = [l for l in b.log().splitlines() if "event=queue.dropped_oldest" in l]
            self.assertLessEqual(len(lines), 2, b.log())
            self.assertIn("total=600", lines[-1])
            self.assertEqual(w.queue_count(), 300)
            w.cloud.start()
            self.assertEqual(sub.connect(), 0)
            sub.wait_unique(lambda m: json.loads(m["payload"])["n"], 300)
            time.sleep(0.5)
            got = sorted(set(seqs_of(sub.messages)))
            self.assertEqual(got, list(range(600, 900)), b.log()[-2000:])
            self.assertEqual(b.stop(), 0)
            self.assertRegex(b.log(), r"event=bridge\.stopped .*dropped_oldest=600")


class DiskFull(unittest.TestCase):
    def with_tmpfs(self, env, size):
        mnt = env.path("small")
        os.makedirs(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a small tmpfs here (%s): disk-full test skipped"
                          % (r.stderr.strip() or r.returncode))
        # Cleanups run after the Env has closed, which could not remove the
        # mount point while it was mounted: unmount, then remove what is left
        # if it is empty (a failed test's kept files stay).
        self.addCleanup(lambda: [os.rmdir(d) for d in (mnt, env.tmp) if os.path.isdir(d)
                                 and not os.listdir(d)])
        self.addCleanup(subprocess.run, ["umount", "-l", mnt], capture_output=True)
        return mnt

    def start(self, env, mnt, extra):
        w = BridgeWorld(env, cloud_persistence=True)
        w.queue_path = os.path.join(mnt, "queue.db")
        sub = w.cloud_subscriber("#", clean=False)
        b = w.start_bridge(RULES, extra=extra)
        self.assertTrue(w.wait_plant_ready(b), b.log())
        self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
        return w, sub, b

    def finish(self, w, sub, b, n):
        sub.wait_unique(lambda m: json.loads(m["payload"])["n"], n)
        got = set(seqs_of(sub.messages))
        self.assertEqual(sorted(set(range(n)) - got), [], b.log()[-3000:])
        self.assertEqual(b.stop(), 0)
        import sqlite3
        with sqlite3.connect(w.queue_path) as db:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")

    def test_disk_low_backpressure_then_resume(self):
        """The guard: below queue_min_free_disk the bridge stops reading."""
        with h.Env("br-disklow") as env:
            # The guard stops reading at the next batch, and what was read
            # by then is still committed (up to two batches, and a row of
            # 2 KB takes a 4 KiB page, once in the WAL and once in the
            # database): the margin has to hold that and the WAL's
            # checkpoint.  3M of 6m leaves it room; 1M of 2m was at the edge
            # (it filled the disk under ASan, deletes failed).
            mnt = self.with_tmpfs(env, "6m")
            http, port = http_extra()
            w, sub, b = self.start(env, mnt, "queue_min_free_disk 3M\n" + http)
            w.cloud.stop()
            pub = w.publisher()
            n = 2000  # 2000 x ~2 KiB: more than the 3 MiB the guard leaves usable
            publish_n(pub, 0, n, size=2000)
            self.assertTrue(b.wait_log(r"event=queue\.disk_low", 20), b.log())
            time.sleep(1)
            self.assertEqual(b.log().count("event=queue.disk_low"), 1, b.log())
            self.assertNotIn("event=queue.write_failed", b.log())
            assert_blocked(self, port, "disk_low", "below queue_min_free_disk")
            w.cloud.start()
            self.assertEqual(sub.connect(), 0)
            # As the cloud drains the queue, reading resumes (and may stop
            # again while the plant broker's backlog comes in): one episode,
            # ended by one disk_ok once the disk has had room for 3 s.
            self.assertTrue(b.wait_log(r"event=queue\.disk_ok .*stops=\d+", 30), b.log()[-3000:])
            self.finish(w, sub, b, n)
            self.assertEqual(b.log().count("event=queue.disk_low"), 1, b.log())
            self.assertEqual(b.log().count("event=queue.disk_ok"), 1, b.log())

    def test_disk_really_full_no_ack_then_resume(self):
        """No guard, and another process fills the disk: the commit fails,
        nothing is acknowledged, and it resumes when space returns."""
        with h.Env("br-diskfull") as env:
            mnt = self.with_tmpfs(env, "2m")
            http, port = http_extra()
            w, sub, b = self.start(env, mnt, "queue_min_free_disk 0\n" + http)
            pub = w.publisher()
            publish_n(pub, 0, 10, size=2000)
            sub.wait_messages(10, 10)
            w.cloud.stop()
            filler = os.path.join(mnt, "filler")
            subprocess.run(["dd", "if=/dev/zero", "of=" + filler, "bs=4k"], capture_output=True)
            n = 310  # more than the WAL the queue already has room in
            publish_n(pub, 10, n - 10, size=2000)
            self.assertTrue(b.wait_log(r"event=queue\.write_failed.*disk full", 20), b.log())
            time.sleep(1.5)
            self.assertEqual(b.log().count("event=queue.write_failed"), 1, b.log())
            self.assertTrue(b.alive())
            assert_blocked(self, port, "write_failed", "writing to the queue failed")
            os.unlink(filler)
            self.assertTrue(b.wait_log(r"event=queue\.write_resumed", 20), b.log())
            w.cloud.start()
            self.assertEqual(sub.connect(), 0)
            self.finish(w, sub, b, n)


class StartupAndConfig(unittest.TestCase):
    def test_corrupt_queue_refused_and_kept(self):
        with h.Env("br-corrupt") as env:
            w = BridgeWorld(env)
            junk = bytes((i * 7 + 3) % 256 for i in range(8192))
            with open(w.queue_path, "wb") as f:
                f.write(junk)
            b = w.start_bridge(RULES)
            self.assertEqual(b.wait(10), 1, b.log())
            self.assertIn("Nothing was deleted", b.log())
            self.assertIn(".recover", b.log())
            with open(w.queue_path, "rb") as f:
                self.assertEqual(f.read(), junk)

    def test_empty_queue_refused_and_kept(self):
        # A zero-length file is damage (a truncated file, an unfinished copy),
        # never silently replaced by a new empty queue.
        with h.Env("br-empty") as env:
            w = BridgeWorld(env)
            open(w.queue_path, "wb").close()
            b = w.start_bridge(RULES)
            self.assertEqual(b.wait(10), 1, b.log())
            self.assertIn("is empty (0 bytes)", b.log())
            self.assertIn("Nothing was changed", b.log())
            self.assertEqual(os.path.getsize(w.queue_path), 0)

    def test_check_mode(self):
        with h.Env("br-check") as env:
            w = BridgeWorld(env)
            good = env.write("good.conf", bridge_conf(w, RULES))
            p = subprocess.run([h.bridge_path(), "-n", "-c", good], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual((p.returncode, p.stdout.strip()), (0, "configuration OK"), p.stderr)
            bad = env.write("bad.conf", bridge_conf(w, ["#"], extra="frobnicate 1\n")
                            .replace("plant_keyfile ", "plant_keyfile /nonexistent"))
            p = subprocess.run([h.bridge_path(), "-n", "-c", bad], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(p.returncode, 1)
            self.assertRegex(p.stderr, r"bad\.conf:\d+: '#' would forward every topic")
            self.assertRegex(p.stderr, r"bad\.conf:\d+: unknown key 'frobnicate'")
            self.assertNotIn("configuration OK", p.stdout)
            p = subprocess.run([h.bridge_path(), "-n", "-c",
                                os.path.join(h.ROOT, "config", "bridge.example")],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 1)  # its /etc/plantgate files do not exist here
            self.assertRegex(p.stderr, r"bridge\.example:\d+: plant_cafile '/etc/plantgate/pki/ca.crt'")
            p = subprocess.run([h.bridge_path(), "-n", "--no-file-checks", "-c",
                                os.path.join(h.ROOT, "config", "bridge.example")],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual((p.returncode, p.stdout.strip()), (0, "configuration OK"), p.stderr)

    def test_sighup_reloads_rules_and_keeps_them_on_error(self):
        with h.Env("br-hup") as env:
            w = BridgeWorld(env)
            sub = w.cloud_subscriber("#")
            b = w.start_bridge(["plant/a/telemetry/# qos=1"])
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())
            pub = w.publisher()
            self.assertTrue(pub.publish("plant/a/telemetry/x", b"1", qos=1))
            self.assertTrue(pub.publish("plant/b/telemetry/x", b"2", qos=1))
            sub.wait_messages(1, 15)
            # A broken file: the old rules stay, the error has file:line.
            with open(env.path("bridge.conf"), "a") as f:
                f.write("forward #\n")
            b.signal(h.signal.SIGHUP)
            self.assertTrue(b.wait_log(r"event=config\.reload_failed error=\".*bridge\.conf:\d+: '#'", 5),
                            b.log())
            # A good file: plant/b is added, plant/a removed.
            env.write("bridge.conf", bridge_conf(w, ["plant/b/telemetry/# qos=1"]))
            b.signal(h.signal.SIGHUP)
            self.assertTrue(b.wait_log(r"event=plant\.whitelist_applied rules=1", 5), b.log())
            # That line is logged when the UNSUBSCRIBE and SUBSCRIBE are sent, not
            # acknowledged: probe on plant/b until the plant broker delivers it.
            # The UNSUBSCRIBE of plant/a went first on the same connection.
            sent = []

            def probe_in():
                sent.append(b"p%d" % len(sent))
                self.assertTrue(pub.publish("plant/b/telemetry/probe", sent[-1], qos=1))
                return h.wait_for(lambda: any(m["topic"].endswith("/probe") for m in sub.messages), 1)
            self.assertTrue(h.wait_for(probe_in, 20, 0), b.log())
            # One publisher, in order: once a probe is in, the last one sent follows.
            self.assertTrue(h.wait_for(lambda: any(m["payload"] == sent[-1] for m in sub.messages),
                                       10), b.log())
            before = [(m["topic"], m["payload"]) for m in sub.take()]
            self.assertEqual(before[0], ("plant/a/telemetry/x", b"1"), before)
            self.assertEqual({t for t, _ in before[1:]}, {"plant/b/telemetry/probe"}, before)
            self.assertTrue(pub.publish("plant/a/telemetry/x", b"3", qos=1))
            self.assertTrue(pub.publish("plant/b/telemetry/x", b"4", qos=1))
            sub.wait_messages(1, 15)
            time.sleep(0.5)
            self.assertEqual([(m["topic"], m["payload"]) for m in sub.messages],
                             [("plant/b/telemetry/x", b"4")])
            self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
