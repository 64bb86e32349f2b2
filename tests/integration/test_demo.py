"""scripts/demo, the README's first command, runs end to end: it exits 0 by
itself with --duration, shows telemetry delivered to the cloud, and at least
two refusals with their reasons."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


class Demo(unittest.TestCase):
    def test_demo_runs_and_explains(self):
        run = tempfile.mkdtemp(prefix="pg-demo-")
        env = dict(os.environ, PG_DEMO_BUILD=h.BUILD, PG_DEMO_RUN=run)
        p = subprocess.run([os.path.join(h.ROOT, "scripts", "demo"), "--duration", "10"],
                           capture_output=True, text=True, timeout=180, env=env)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        m = re.search(r"(\d+) messages arrived at the cloud broker", out)
        self.assertTrue(m and int(m.group(1)) >= 1, out)
        self.assertIn("sites/hq/line1/sensor-a1/telemetry/temp", out, out)
        refusals = re.findall(r"(publish|subscribe) denied: .*reason=\"[^\"]+\"", out)
        self.assertGreaterEqual(len(refusals), 2, out)
        self.assertIn("sensor-b2's forged reading: 0 copies at the cloud", out, out)
        self.assertIn("refused in the TLS handshake", out, out)
        # The doctor's report, from wherever the build puts plantgate-doctor.
        self.assertIn("plantgate-doctor: security self-assessment of the plant hub", out, out)
        self.assertIn("Stopped everything the demo started.", out, out)
        self.assertRegex(out, r"audit chain: +OK", out)
        self.assertRegex(out, r"\b[1-9]\d* verified, 0 tampered, 0 unsigned, 0 gaps", out)
        self.assertRegex(out, r"Summary: 0 critical", out)
        # Nothing it started is left running.
        left = subprocess.run(["pgrep", "-f", run], capture_output=True, text=True)
        self.assertEqual(left.stdout.strip(), "", "processes left running: " + left.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
