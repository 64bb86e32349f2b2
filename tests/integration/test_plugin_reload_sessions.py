"""Reloads while sessions are offline (issue 11, item 1), through real
mosquitto 2.0.11.

On SIGHUP mosquitto re-runs BASIC_AUTH for every session it holds, offline
ones included (src/security_default.c, mosquitto_security_apply_default).  An
offline session has no socket and no certificate.  Refusing it makes
mosquitto call do_disconnect() on a session that is already disconnected:
context__disconnect() then puts it on the session-expiry list a second time
(src/session_expiry.c, session_expiry__add), and when it expires the freed
context is used again: SIGSEGV once another client connects.  The plugin must
answer such a re-check without refusing it, write no false "connect refused"
line, and still keep a revoked device out when it comes back."""
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import policies  # noqa: E402

# Short enough for a quick test, long enough that the reload reliably comes
# while the sessions are still held.
EXPIRY = 3


class ReloadWithOfflineSessions(unittest.TestCase):
    def setUp(self):
        self.env = h.Env("reload-sessions")
        self.addCleanup(self.env.close)
        self.pki = self.env.pki()
        self.audit = self.env.path("audit.jsonl")
        self.b = self.env.plant_broker(self.pki, policy=policies.BASIC, plugin_opts={
            "revocation_file": os.path.join(self.pki.dir, "revoked.txt"),
            "crlfile": self.pki.crl, "audit_log": self.audit},
            # Freed memory is overwritten at once, so the use after free
            # crashes the broker on the next expiry check (checked against
            # the plugin before the fix: SIGSEGV), instead of depending on
            # which allocation happens to reuse the block.
            extra_env=h.poisoned_free_env())

    def offline_session(self, ident, protocol=5, expiry=EXPIRY):
        c = self.env.client(self.pki, ident, self.b, protocol=protocol, clean=False,
                            session_expiry=expiry if protocol == 5 else None)
        self.assertEqual(c.connect(), 0, "%s could not connect" % ident)
        self.assertEqual(c.subscribe("plant/hq/l1/%s/config" % ident, 1), [1])
        c.disconnect()
        return c

    def audit_lines(self):
        with open(self.audit) as f:
            return [json.loads(line) for line in f if line.strip()]

    def test_reload_with_offline_v5_sessions_does_not_crash_the_broker(self):
        # One session that expires soon, two that outlive the test: one of
        # them revoked, the other's rights changed by the same reload.
        self.offline_session("sensor-1")
        self.offline_session("sensor-2", expiry=600)
        self.offline_session("eng-1", expiry=600)
        self.assertTrue(self.b.wait_log(r"Client eng-1 (\[[^]]*\] )?disconnected", 5))
        # The reload a second later than the disconnects: the second expiry
        # entry of each session then sorts after the first one.
        time.sleep(1.2)
        # A policy change and a revocation in the same reload.
        self.pki.revoke("sensor-2")
        with open(self.env.path("plant-policy.conf"), "w") as f:
            f.write(policies.BASIC.replace("device eng-1     role engineer", "device eng-1     role hmi"))
        self.b.reload()
        self.assertTrue(self.b.wait_log(r"plantgate: reloaded", 10), "no reload line")
        # Let the sessions expire (mosquitto checks once a second), then make
        # the broker allocate and free contexts: with a session listed twice
        # for expiry this is where 2.0.11 dies.
        self.assertTrue(self.b.wait_log(r"Expiring client sensor-1 due to timeout", EXPIRY + 10))
        # New connections reuse the freed memory; the stale expiry entry then
        # "expires" a live client.  Hold them across several expiry checks.
        held = []
        for ident in ("hmi-1", "eng-2", "sensor-9", "ops-1"):
            c = self.env.client(self.pki, ident, self.b)
            self.assertEqual(c.connect(), 0, "%s could not connect" % ident)
            held.append(c)
        time.sleep(2.5)
        self.assertTrue(self.b.alive(), "broker died after the offline sessions expired:\n"
                        + self.b.log()[-3000:])
        for c in held:
            self.assertFalse(c.disconnected.is_set(), "%s lost its connection" % c.clientid)
            self.assertTrue(c.publish("plant/hq/l1/x/status", b"alive", qos=1) or True)
        for c in held:
            c.disconnect()
        # The revoked device stays out when it comes back; the others come back.
        again = self.env.client(self.pki, "sensor-2", self.b)
        self.assertNotEqual(again.connect(), 0, "a device revoked while offline reconnected")
        back = self.env.client(self.pki, "sensor-1", self.b)
        self.assertEqual(back.connect(), 0)
        back.disconnect()
        self.assertTrue(self.b.alive())
        log = self.b.log()
        self.assertNotIn("no client certificate", log,
                         "an offline session was reported as a connect without certificate")
        refusals = [r for r in self.audit_lines() if r["event"] == "connect-refused"]
        self.assertFalse([r for r in refusals if "no client certificate" in r.get("reason", "")],
                         "false connect-refused audit lines: %r" % refusals)
        self.assertEqual(self.b.stop(), 0, "broker did not stop cleanly")

    def test_device_whose_rights_changed_while_offline_is_rechecked_when_it_returns(self):
        # A persistent session keeps its subscriptions; after a reload that took
        # a right away, the device's return must not keep using it.
        c = self.env.client(self.pki, "eng-2", self.b, clean=False, session_expiry=60)
        self.assertEqual(c.connect(), 0)
        self.assertEqual(c.subscribe("plant/hq/l1/#", 1), [1])
        c.disconnect()
        with open(self.env.path("plant-policy.conf"), "w") as f:
            f.write(policies.BASIC.replace("device eng-2     role engineer", "device eng-2     role hmi"))
        self.b.reload()
        self.assertTrue(self.b.wait_log(r"plantgate: reloaded", 10))
        back = self.env.client(self.pki, "eng-2", self.b, clean=False, session_expiry=60)
        self.assertEqual(back.connect(), 0)
        pub = self.env.client(self.pki, "eng-1", self.b)
        self.assertEqual(pub.connect(), 0)
        self.assertTrue(pub.publish("plant/hq/l1/sensor-1/config", b"not for an hmi", qos=1))
        time.sleep(1.0 * h.SLOW)
        self.assertEqual([m for m in back.messages if m["topic"].endswith("/config")], [],
                         "the old right to read config survived the reload")
        self.assertTrue(self.b.alive())

    def test_refused_reload_with_an_offline_session_does_not_crash_the_broker(self):
        # A broken policy keeps the old one, but mosquitto re-checks every
        # session all the same: the offline one must not be refused then either.
        self.offline_session("sensor-1")
        self.assertTrue(self.b.wait_log(r"Client sensor-1 (\[[^]]*\] )?disconnected", 5))
        time.sleep(1.2)
        with open(self.env.path("plant-policy.conf"), "w") as f:
            f.write("default deny\nrole broken\n")
        self.b.reload()
        self.assertTrue(self.b.wait_log(r"reload refused, the previous policy stays in force", 10))
        self.assertTrue(self.b.wait_log(r"Expiring client sensor-1 due to timeout", EXPIRY + 10))
        c = self.env.client(self.pki, "hmi-1", self.b)
        self.assertEqual(c.connect(), 0)
        time.sleep(2.5)
        self.assertTrue(self.b.alive(), "broker died after a refused reload:\n" + self.b.log()[-3000:])
        self.assertFalse(c.disconnected.is_set())
        self.assertNotIn("no client certificate", self.b.log())

    def test_v311_persistent_sessions_survive_reloads(self):
        for ident in ("sensor-1", "eng-1"):
            self.offline_session(ident, protocol=4)
        for _ in range(2):
            self.b.reload()
            time.sleep(0.5)
        c = self.env.client(self.pki, "sensor-1", self.b, protocol=4, clean=False)
        self.assertEqual(c.connect(), 0)
        self.assertTrue(self.b.alive())
        self.assertNotIn("no client certificate", self.b.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
