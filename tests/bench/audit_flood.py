#!/usr/bin/env python3
"""Audit bytes written for N refused publishes to distinct topics by one device.
usage: [PG_BUILD_DIR=<build dir>] python3 tests/bench/audit_flood.py N
Run it once with the build of the code before and once after a change."""
import os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h, policies
n = int(sys.argv[1])
env = h.Env("measure")
try:
    pki = env.pki()
    audit = env.path("audit.jsonl")
    b = env.plant_broker(pki, policy=policies.BASIC, plugin_opts={"audit_log": audit})
    dev = env.client(pki, "sensor-1", b)
    assert dev.connect() == 0
    time.sleep(0.5)
    before = os.path.getsize(audit)
    t0 = time.monotonic()
    for i in range(n):
        dev.publish("plant/hq/l1/sensor-2/telemetry/%d" % i, b"x")
    assert dev.publish("plant/hq/l1/sensor-1/status", b"sync", qos=1)
    t1 = time.monotonic()
    burst = os.path.getsize(audit) - before
    time.sleep(12)  # the 10 s window closes: its summary is written
    total = os.path.getsize(audit) - before
    with open(audit) as f:
        lines = sum(1 for _ in f)
    print("N=%d plugin=%s: audit +%d bytes during the burst (%.2f s), +%d bytes after 12 s, %d lines in the file"
          % (n, h.plugin_path(), burst, t1 - t0, total, lines))
finally:
    env.close()
