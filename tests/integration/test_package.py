"""The Debian package, installed into a throwaway root and removed again.

scripts/package builds plantgate_<version>_<arch>.deb (CPack, incremental in
$PG_BUILD_DIR/package; PG_PACKAGE_DEB names a ready one instead).  dpkg
installs it with --root into an empty directory; --force-script-chrootless
runs the maintainer scripts on this host with DPKG_ROOT set, and they touch
only DPKG_ROOT (systemd-sysusers/-tmpfiles --root), so the host is left alone.
Then the installed programs run with the shipped configuration: every
--version, plantgate-bridge -n, plantgate-policy check, plantgate-pki,
mosquitto with the installed plugin admitting a device, plantgate-doctor.  A
changed conffile survives a reinstall; purge leaves nothing behind but dpkg's
database and the system users (kept, as Debian policy asks, with the
user database's lock file .pwd.lock)."""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PROGRAMS = ["plantgate-bridge", "plantgate-verify", "plantgate-policy", "plantgate-audit",
            "plantgate-doctor", "plantgate-est", "plantgate-enroll", "plantgate-pki"]


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


def project_version():
    with open(os.path.join(h.ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(plantgate VERSION ([0-9.]+)", f.read()).group(1)


def package():
    deb = os.environ.get("PG_PACKAGE_DEB")
    if deb:
        return deb
    p = run([os.path.join(h.ROOT, "scripts", "package"), os.path.join(h.BUILD, "package")],
            timeout=900)
    if p.returncode != 0:
        raise AssertionError("scripts/package failed:\n" + p.stdout + p.stderr)
    return p.stdout.strip().splitlines()[-1]


class Package(unittest.TestCase):
    def dpkg(self, root, *args):
        p = run(["dpkg", "--root=" + root, "--force-script-chrootless", "--force-depends",
                 "--force-not-root", "--log=/dev/null"] + list(args))
        self.assertEqual(p.returncode, 0, "dpkg %s:\n%s%s" % (" ".join(args), p.stdout, p.stderr))
        return p

    def test_install_run_upgrade_purge(self):
        version = project_version()
        deb = package()
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        self.assertEqual(os.path.basename(deb), "plantgate_%s_%s.deb" % (version, arch))
        fields = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
        for dep in ("libmosquitto1", "libssl3", "libsqlite3-0", "libwebsockets17", "openssl"):
            self.assertIn(dep, fields)
        conffiles = run(["dpkg-deb", "--info", deb, "conffiles"]).stdout.split()
        self.assertEqual(sorted(conffiles), ["/etc/plantgate/bridge.conf",
                                             "/etc/plantgate/est.conf",
                                             "/etc/plantgate/policy.conf"])

        with h.Env("package") as env:
            root = env.path("root")
            for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"):
                os.makedirs(os.path.join(root, d))
            open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
            with open("/etc/passwd") as f:
                host_passwd = f.read()
            self.dpkg(root, "--install", deb)
            r = lambda *p: os.path.join(root, *p)  # noqa: E731

            # postinst: the user, its state directory, the configuration's group.
            with open(r("etc/passwd")) as f:
                pw = {l.split(":")[0]: l.split(":") for l in f}
            self.assertIn("plantgate", pw)
            self.assertEqual(pw["plantgate"][5], "/var/lib/plantgate")
            uid, gid = int(pw["plantgate"][2]), int(pw["plantgate"][3])
            self.assertLess(uid, 1000)
            st = os.stat(r("var/lib/plantgate"))
            self.assertEqual((st.st_uid, st.st_mode & 0o777), (uid, 0o700))
            st = os.stat(r("etc/plantgate/bridge.conf"))
            self.assertEqual((st.st_gid, st.st_mode & 0o777), (gid, 0o640))
            # ... and nothing on this host.
            with open("/etc/passwd") as f:
                self.assertEqual(f.read(), host_passwd)

            bindir = r("usr", "bin")
            for prog in PROGRAMS:
                p = run([os.path.join(bindir, prog), "--version"])
                self.assertEqual(p.stdout, "%s %s\n" % (prog, version), prog + p.stderr)

            p = run([os.path.join(bindir, "plantgate-bridge"), "-n", "--no-file-checks",
                     "-c", r("etc/plantgate/bridge.conf")])
            self.assertIn("configuration OK", p.stdout + p.stderr)
            p = run([os.path.join(bindir, "plantgate-policy"), "check", r("etc/plantgate/policy.conf")])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

            # The installed plantgate-pki; its template is /usr/share/plantgate/certs
            # (here under the throwaway root).
            h.PKI_SCRIPT = os.path.join(bindir, "plantgate-pki")
            os.environ["PLANTGATE_CERTS_DIR"] = r("usr/share/plantgate/certs")
            pki = h.Pki(env, "pki")
            pki.server("broker")

            # mosquitto with the installed plugin and the shipped example config.
            multiarch = run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).stdout.strip()
            plugin = "/usr/lib/%s/mosquitto/plantgate_auth.so" % multiarch
            self.assertTrue(os.path.exists(r(plugin.lstrip("/"))))
            port = h.free_port()
            text = h.render(r("usr/share/doc/plantgate/examples/mosquitto.conf"), [
                ("/etc/plantgate/pki/", pki.dir + "/"),
                (plugin, r(plugin.lstrip("/"))),
                ("/etc/plantgate/policy.conf", r("etc/plantgate/policy.conf")),
                ("listener 8883 127.0.0.1", "listener %d 127.0.0.1" % port),
                ("/var/lib/mosquitto/", env.tmp + "/"),
                ("log_dest syslog", "log_dest stderr"),
                ("/var/log/plantgate/", env.tmp + "/"),
            ])
            conf = env.write("mosquitto.conf", text)
            broker = h.Broker(env, "plant", text, port)
            self.assertTrue(broker.wait_log(r"plantgate: version %s \(mosquitto 2\.[0-9.]+\), policy .* loaded"
                                            % re.escape(version), 5), broker.log())
            dev = env.client(pki, "press-01", broker, site="hq", line="line1")
            self.assertEqual(dev.connect(), 0, broker.log())
            dev.disconnect()

            p = run([os.path.join(bindir, "plantgate-doctor"), "--mosquitto-conf", conf])
            self.assertIn(p.returncode, (0, 1, 2), p.stdout + p.stderr)
            self.assertRegex(p.stdout, r"Summary: \d+ critical")
            broker.stop()

            # Upgrade (a reinstall): the administrator's change stays.
            with open(r("etc/plantgate/policy.conf"), "a") as f:
                f.write("# changed by the administrator\n")
            self.dpkg(root, "--install", deb)
            with open(r("etc/plantgate/policy.conf")) as f:
                self.assertIn("# changed by the administrator", f.read())

            # Purge: nothing left but dpkg's database and the system users.
            self.dpkg(root, "--purge", "plantgate")
            left = []
            for d, dirs, files in os.walk(root):
                rel = os.path.relpath(d, root)
                if rel == "var/lib/dpkg" or rel.startswith("var/lib/dpkg/"):
                    continue
                for f in files:
                    p = os.path.normpath(os.path.join(rel, f))
                    if not re.fullmatch(r"etc/((passwd|group|shadow|gshadow)-?|\.pwd\.lock)", p):
                        left.append(p)
            self.assertEqual(left, [])
            dirs = sorted(os.path.relpath(os.path.join(d, x), root) for d, ds, _ in os.walk(root)
                          for x in ds)
            self.assertEqual([d for d in dirs if not d.startswith("var")], ["etc"], dirs)
            shutil.rmtree(root)


if __name__ == "__main__":
    unittest.main(verbosity=2)
