#!/usr/bin/env python3
"""CPU time per process name between two moments, from /proc (no perf needed).

  cpu_by_process.py snap FILE          write a snapshot (pid -> name, user+system ticks)
  cpu_by_process.py diff FILE SECONDS  CPU used since the snapshot, grouped by process name,
                                       as seconds and as % of one core over SECONDS of wall time

Processes that started after the snapshot count from zero; processes that ended before the
diff are missed (the benchmarks keep their processes alive until after the diff).
"""
import json
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")
# Binaries of the benchmark (lib.sh exports it); api/worker processes elsewhere are "[other]".
OURS = os.path.realpath(os.environ["TAQUILLA_BIN_DIR"]) + "/" if os.environ.get("TAQUILLA_BIN_DIR") else ""


def snapshot():
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                data = f.read()
        except OSError:
            continue
        name = data[data.index("(") + 1 : data.rindex(")")]
        if name in ("api", "worker") and OURS:
            # Other api/worker processes on this machine (a developer's) are told apart.
            try:
                if not os.path.realpath(f"/proc/{pid}/exe").startswith(OURS):
                    name += " [other]"
            except OSError:
                pass
        fields = data[data.rindex(")") + 2 :].split()
        # fields[0] is state (field 3); utime/stime are fields 14/15 -> index 11/12.
        ticks = int(fields[11]) + int(fields[12])
        start = fields[19]  # starttime: tells a reused pid apart
        out[pid] = [name, ticks, start]
    return out


def machine():
    """Jiffies from /proc/stat: busy (every process, including ended ones), idle+iowait, steal."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return {"busy": user + nice + system + irq + softirq, "idle": idle + iowait, "steal": steal}


def group(name):
    # postgres backends rename themselves ("postgres: 15/main: ..."), comm stays "postgres".
    return name


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "snap":
        with open(sys.argv[2], "w") as f:
            json.dump({"procs": snapshot(), "machine": machine()}, f)
        return
    if len(sys.argv) >= 4 and sys.argv[1] == "diff":
        with open(sys.argv[2]) as f:
            saved = json.load(f)
        before, m0 = (saved["procs"], saved["machine"]) if "procs" in saved else (saved, None)
        m1 = machine()
        wall = float(sys.argv[3])
        now = snapshot()
        used = {}
        for pid, (name, ticks, start) in now.items():
            prev = before.get(pid)
            base = prev[1] if prev and prev[2] == start else 0
            delta = ticks - base
            if delta > 0:
                used[group(name)] = used.get(group(name), 0) + delta
        total = sum(used.values())
        print(f"CPU by process over {wall:.2f} s wall ({os.cpu_count()} cores = {wall * os.cpu_count():.2f} core-s available):")
        for name, ticks in sorted(used.items(), key=lambda kv: -kv[1]):
            secs = ticks / TICK
            if secs < 0.05:
                continue
            print(f"  {name:<18} {secs:8.2f} core-s  {100 * secs / wall:6.1f}% of one core")
        print(f"  {'TOTAL':<18} {total / TICK:8.2f} core-s  {100 * total / TICK / (wall * os.cpu_count()):6.1f}% of the machine")
        if m0 is None:
            return
        busy, steal = m1["busy"] - m0["busy"], m1["steal"] - m0["steal"]
        print(f"  machine-wide (/proc/stat, includes processes that ended): busy {busy / TICK:.2f} core-s"
              f" = {100 * busy / TICK / (wall * os.cpu_count()):.1f}%, steal {steal / TICK:.2f} core-s")
        return
    print(__doc__, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
