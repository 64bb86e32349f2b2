"""Least privilege: started as root, plantgate-bridge reads its keys, binds its
HTTP port, then runs as the configured user for good — checked from outside in
/proc/PID/status (all four uids and gids, supplementary groups, NoNewPrivs,
no capabilities) — and still relays, also after a cloud reconnect (the keys
it can no longer read were loaded before the drop).  Key files readable by
group or others are refused with the chmod to run; `user root` needs
`allow_root yes`; a missing user is a clear error.
"""
import grp
import os
import pwd
import re
import subprocess
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_bridge_relay import BridgeWorld, bridge_conf  # noqa: E402

RULES = ["plant/+/telemetry/# qos=1"]


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.split()
    return fields


class TestUser:
    """nobody, or a throwaway system user when this system has none."""

    def __enter__(self):
        self.created = None
        try:
            pw = pwd.getpwnam("nobody")
        except KeyError:
            self.created = "pgtest%d" % os.getpid()
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", self.created], check=True)
            pw = pwd.getpwnam(self.created)
        self.name, self.uid, self.gid = pw.pw_name, pw.pw_uid, pw.pw_gid
        return self

    def __exit__(self, *exc):
        if self.created:
            subprocess.run(["userdel", self.created], check=False)
        return False


@unittest.skipUnless(os.geteuid() == 0, "dropping privileges needs root (the suite runs as root)")
class Privilege(unittest.TestCase):
    def test_drops_to_user_and_cannot_regain_root(self):
        with h.Env("br-priv") as env, TestUser() as u:
            w = BridgeWorld(env)
            # Only the queue's directory belongs to the user; keys stay root's, 0600.
            os.chmod(env.tmp, 0o711)
            qdir = env.path("queue")
            os.mkdir(qdir, 0o700)
            os.chown(qdir, u.uid, u.gid)
            w.queue_path = os.path.join(qdir, "queue.db")
            port = h.free_port()
            b = w.start_bridge(RULES, extra="user %s\nhttp_listen 127.0.0.1:%d\n" % (u.name, port))
            self.assertTrue(b.wait_log(r"event=bridge\.privileges_dropped user=%s uid=%d gid=%d "
                                       r"no_new_privs=1" % (u.name, u.uid, u.gid), 10), b.log())
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertTrue(b.wait_log(r"event=cloud\.connected", 10), b.log())

            st = proc_status(b.pid)
            self.assertEqual(st["Uid"], [str(u.uid)] * 4, st["Uid"])
            self.assertEqual(st["Gid"], [str(u.gid)] * 4, st["Gid"])
            self.assertEqual(st["Groups"], [str(u.gid)], st.get("Groups"))
            self.assertEqual(st["NoNewPrivs"], ["1"])
            self.assertEqual(int(st["CapEff"][0], 16), 0)
            self.assertEqual(int(st["CapPrm"][0], 16), 0)
            # The threads too (a drop that missed one would show here).
            for tid in os.listdir("/proc/%d/task" % b.pid):
                with open("/proc/%d/task/%s/status" % (b.pid, tid)) as f:
                    text = f.read()
                self.assertIn("Uid:\t%d\t%d\t%d\t%d" % ((u.uid,) * 4), text)

            # The queue files belong to the user; the key files it cannot read.
            self.assertEqual(os.stat(w.queue_path).st_uid, u.uid)
            crt, key = w.plant_pki.bridge_cert("bridge-01")
            self.assertEqual(os.stat(key).st_uid, 0)
            self.assertEqual(os.stat(key).st_mode & 0o077, 0)

            # Relays, also across a cloud reconnect (contexts loaded before the drop).
            sub = w.cloud_subscriber("#")
            pub = w.publisher()
            self.assertTrue(pub.publish("plant/l1/telemetry/t", b"one", qos=1))
            self.assertEqual([m["payload"] for m in sub.wait_messages(1, 30)], [b"one"])
            # Acknowledged and deleted before the restart, or the bridge would
            # rightly resend "one" (at-least-once) to the second subscriber.
            # (Asked over HTTP: the queue's files are the user's, not for root to open.)
            def queued():
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                    text = r.read().decode()
                return float(re.search(r"^plantgate_bridge_queue_messages (\S+)$", text, re.M).group(1))
            self.assertTrue(h.wait_for(lambda: queued() == 0, 15), b.log())
            w.cloud.restart()
            self.assertTrue(b.wait_log(r"event=cloud\.connected.*\n(.*\n)*.*event=cloud\.connected",
                                       15), b.log())
            sub = w.cloud_subscriber("#", ident="consumer-2")
            self.assertTrue(pub.publish("plant/l1/telemetry/t", b"two", qos=1))
            self.assertEqual([m["payload"] for m in sub.wait_messages(1, 30)], [b"two"], b.log())
            # The HTTP port was bound before the drop and serves after it.
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5) as r:
                self.assertEqual(r.status, 200)
            self.assertEqual(b.stop(), 0, b.log())

    def test_loose_key_modes_are_refused(self):
        with h.Env("br-priv-keys") as env:
            w = BridgeWorld(env)
            crt, key = w.plant_pki.bridge_cert("bridge-01")
            path = env.write("b.conf", bridge_conf(w, RULES))
            for mode, who in ((0o644, "every user"), (0o640, "its group")):
                os.chmod(key, mode)
                p = subprocess.run([h.bridge_path(), "-n", "-c", path], capture_output=True,
                                   text=True, timeout=30)
                self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
                self.assertIn("plant_keyfile '%s': the private key is readable by %s (mode 0%o): "
                              "run `chmod 600 %s`" % (key, who, mode, key), p.stderr)
            # Not only at -n: the bridge refuses to start.
            b = env.bridge(open(path).read(), name="loose")
            self.assertEqual(b.wait(20), 1, b.log())
            self.assertIn("chmod 600 %s" % key, b.log())
            os.chmod(key, 0o600)
            p = subprocess.run([h.bridge_path(), "-n", "-c", path], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            os.chmod(key, 0o400)
            p = subprocess.run([h.bridge_path(), "-n", "-c", path], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)

    def test_root_needs_allow_root_and_the_user_must_exist(self):
        with h.Env("br-priv-root") as env:
            w = BridgeWorld(env)
            path = env.write("r.conf", bridge_conf(w, RULES, extra="user root\n"))
            p = subprocess.run([h.bridge_path(), "-n", "-c", path], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(p.returncode, 1)
            self.assertRegex(p.stderr, r"r\.conf:\d+: user root: .*`allow_root yes`")
            b = w.start_bridge(RULES, extra="user pg-no-such-user\n", name="nouser")
            self.assertEqual(b.wait(20), 1, b.log())
            self.assertRegex(b.log(), r"started as root, and the user 'pg-no-such-user' to run as "
                                      r"does not exist.*useradd --system")
            # allow_root yes: runs as root, and says so.
            b = w.start_bridge(RULES, name="asroot")  # the suite's default: user root, allow_root yes
            self.assertTrue(b.wait_log(r"event=bridge\.running_as_root", 10), b.log())
            self.assertEqual(proc_status(b.pid)["NoNewPrivs"], ["1"])
            self.assertTrue(w.wait_plant_ready(b), b.log())
            self.assertEqual(b.stop(), 0, b.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
