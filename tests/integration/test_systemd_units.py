"""The systemd units in config/ pass `systemd-analyze verify` without a single
warning, and keep their sandbox: plantgate-bridge.service, plantgate-crl.service
and .timer, and Debian's mosquitto.service with our drop-in.

systemd need not be PID 1 here: verify reads unit files.  It runs against a
throwaway root (--root) holding the host's own units (for sysinit.target and
friends), our units, and stand-ins for the programs the units start, so that
the check of every Exec path is real without installing anything.  A missing
systemd-analyze fails the test: scripts/deps installs systemd when absent.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

CONFIG = os.path.join(h.ROOT, "config")
ANALYZE = shutil.which("systemd-analyze")
HOST_UNITS = "/usr/lib/systemd/system"
OURS = {"plantgate-bridge.service": "etc/systemd/system/plantgate-bridge.service",
        "plantgate-crl.service": "etc/systemd/system/plantgate-crl.service",
        "plantgate-crl.timer": "etc/systemd/system/plantgate-crl.timer",
        "plantgate-est.service": "etc/systemd/system/plantgate-est.service",
        "plantgate-enroll.service": "etc/systemd/system/plantgate-enroll.service",
        "plantgate-enroll.timer": "etc/systemd/system/plantgate-enroll.timer",
        "mosquitto.service.d/plantgate.conf":
            "etc/systemd/system/mosquitto.service.d/plantgate.conf"}


def directives(path):
    """{key: [values]} of a unit file (comments and sections ignored)."""
    out = {}
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines:
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        k, _, v = line.partition("=")
        out.setdefault(k.strip(), []).append(v.strip())
    return out


class Units(unittest.TestCase):
    def setUp(self):
        self.assertTrue(ANALYZE, "systemd-analyze is missing: run scripts/deps (installs the "
                                 "Debian package systemd only if it is not installed)")
        self.assertTrue(os.path.exists(os.path.join(HOST_UNITS, "mosquitto.service")),
                        "Debian's mosquitto.service is missing: run scripts/deps")
        self.root = tempfile.mkdtemp(prefix="pg-units-")
        self.addCleanup(shutil.rmtree, self.root, True)
        shutil.copytree(HOST_UNITS, os.path.join(self.root, "usr/lib/systemd/system"),
                        symlinks=True)
        for name, rel in OURS.items():
            dst = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(os.path.join(CONFIG, name), dst)
        # Stand-ins for every program the units run.
        units = [os.path.join(self.root, r) for r in OURS.values()]
        units.append(os.path.join(self.root, "usr/lib/systemd/system/mosquitto.service"))
        for u in units:
            for k, vals in directives(u).items():
                if not k.startswith("Exec"):
                    continue
                for v in vals:
                    prog = v.lstrip("-@:+!").split()[0]
                    standin = os.path.join(self.root, prog.lstrip("/"))
                    if not os.path.exists(standin):
                        os.makedirs(os.path.dirname(standin), exist_ok=True)
                        with open(standin, "w") as f:
                            f.write("#!/bin/sh\n")
                        os.chmod(standin, 0o755)

    def verify(self, *units):
        p = subprocess.run([ANALYZE, "verify", "--root=" + self.root, "--man=no",
                            "--generators=no"] + ["/" + u for u in units],
                           capture_output=True, text=True, timeout=120, cwd=self.root)
        return p.returncode, (p.stdout + p.stderr).strip()

    def test_verify_without_warnings(self):
        for unit in ("etc/systemd/system/plantgate-bridge.service",
                     "etc/systemd/system/plantgate-crl.service",
                     "etc/systemd/system/plantgate-crl.timer",
                     "etc/systemd/system/plantgate-est.service",
                     "etc/systemd/system/plantgate-enroll.service",
                     "etc/systemd/system/plantgate-enroll.timer",
                     "usr/lib/systemd/system/mosquitto.service"):  # with our drop-in
            rc, out = self.verify(unit)
            self.assertEqual((rc, out), (0, ""), unit)

    def test_verify_catches_mistakes(self):
        # The check above is only worth something if a typo or a missing
        # program would be reported.
        dropin = os.path.join(self.root, OURS["mosquitto.service.d/plantgate.conf"])
        with open(dropin, "a") as f:
            f.write("ProtectSytem=strict\n")
        rc, out = self.verify("usr/lib/systemd/system/mosquitto.service")
        self.assertIn("Unknown key 'ProtectSytem'", out)
        os.remove(os.path.join(self.root, "usr/bin/plantgate-bridge"))
        rc, out = self.verify("etc/systemd/system/plantgate-bridge.service")
        self.assertNotEqual(rc, 0)
        self.assertIn("/usr/bin/plantgate-bridge is not executable", out)

    def test_bridge_sandbox(self):
        d = directives(os.path.join(CONFIG, "plantgate-bridge.service"))
        want = {"Type": ["simple"], "User": ["plantgate"], "Restart": ["on-failure"],
                "ExecReload": ["/bin/kill -HUP $MAINPID"], "NoNewPrivileges": ["yes"],
                "CapabilityBoundingSet": [""], "ProtectSystem": ["strict"],
                "ProtectHome": ["yes"], "PrivateTmp": ["yes"], "PrivateDevices": ["yes"],
                "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
                "ReadWritePaths": ["/var/lib/plantgate"], "MemoryDenyWriteExecute": ["yes"]}
        for k, v in want.items():
            self.assertEqual(d.get(k), v, k)
        self.assertIn("@system-service", d["SystemCallFilter"])
        self.assertEqual(d["ExecStart"], ["/usr/bin/plantgate-bridge -c /etc/plantgate/bridge.conf"])
        # Never the test-only switch that turns host name verification off.
        with open(os.path.join(CONFIG, "plantgate-bridge.service")) as f:
            self.assertNotIn("PLANTGATE_TEST_INSECURE_HOSTNAME", f.read())
        m = directives(os.path.join(CONFIG, "mosquitto.service.d/plantgate.conf"))
        self.assertEqual(m["ReadWritePaths"], ["/var/lib/mosquitto -/var/log/mosquitto "
                                               "-/var/log/plantgate"])
        self.assertEqual(m["NoNewPrivileges"], ["yes"])
        t = directives(os.path.join(CONFIG, "plantgate-crl.timer"))
        self.assertEqual(t["OnCalendar"], ["weekly"])
        c = directives(os.path.join(CONFIG, "plantgate-crl.service"))
        self.assertEqual(c["ExecStart"], ["/usr/lib/plantgate/pki --dir /etc/plantgate/pki crl"])
        self.assertEqual(c["ExecStartPost"], ["/bin/systemctl reload mosquitto.service"])

    def test_est_sandbox(self):
        d = directives(os.path.join(CONFIG, "plantgate-est.service"))
        want = {"User": ["plantgate-est"], "NoNewPrivileges": ["yes"], "CapabilityBoundingSet": [""],
                "ProtectSystem": ["strict"], "ReadWritePaths": ["/etc/plantgate/pki -/var/log/plantgate"],
                "ExecStart": ["/usr/bin/plantgate-est -c /etc/plantgate/est.conf"],
                "ExecStartPre": ["/usr/bin/plantgate-est -n -c /etc/plantgate/est.conf"]}
        for k, v in want.items():
            self.assertEqual(d.get(k), v, k)
        e = directives(os.path.join(CONFIG, "plantgate-enroll.service"))
        self.assertEqual(e["Type"], ["oneshot"])
        self.assertIn("--renew-before 30d", e["ExecStart"][0])
        self.assertEqual(directives(os.path.join(CONFIG, "plantgate-enroll.timer"))["OnCalendar"],
                         ["daily"])
        self.assertLessEqual(self.score("etc/systemd/system/plantgate-est.service"), 2.0)

    def score(self, unit):
        """systemd's own rating of a unit's sandbox: lower is better (0-10)."""
        p = subprocess.run([ANALYZE, "security", "--offline=yes", "--root=" + self.root,
                            "--no-pager", "/" + unit], capture_output=True, text=True,
                           timeout=120, cwd=self.root)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+)", p.stdout + p.stderr)
        self.assertTrue(m, p.stdout + p.stderr)
        return float(m.group(1))

    def test_exposure_scores(self):
        """systemd's own rating of the sandbox: lower is better (0-10)."""
        score = self.score
        bridge = score("etc/systemd/system/plantgate-bridge.service")
        self.assertLessEqual(bridge, 2.0)
        with_dropin = score("usr/lib/systemd/system/mosquitto.service")
        shutil.rmtree(os.path.join(self.root, "etc/systemd/system/mosquitto.service.d"))
        stock = score("usr/lib/systemd/system/mosquitto.service")
        self.assertLessEqual(with_dropin, 3.5)
        self.assertLess(with_dropin, stock - 4)
        print("exposure: plantgate-bridge %.1f, mosquitto %.1f with the drop-in (%.1f without)"
              % (bridge, with_dropin, stock))


if __name__ == "__main__":
    unittest.main(verbosity=2)
