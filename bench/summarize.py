#!/usr/bin/env python3
"""summarize.py RESULTS_DIR > summary.md

Reads what bench/run wrote (bench.jsonl, bench-defkex.jsonl, concurrency.jsonl,
memory.jsonl, recording.json, kex.txt, machine.txt) and prints a Markdown summary:
every figure for direct / jump / portcullis / portcullis-unrecorded with ratios vs
direct, and issue 7's targets, met or not met.
"""
import json
import os
import sys

TARGETS = ["direct", "jump", "portcullis", "portcullis-unrecorded"]


def jsonl(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    return out


def fmt(v, f="{:.1f}"):
    return "–" if v is None else f.format(v)


def ratio(a, b):
    return a / b if (a is not None and b) else None


def runs(xs, f="{:.0f}"):
    return "[" + ", ".join(fmt(x, f) for x in xs) + "]" if xs else ""


def bench_table(p, bench, base, names, defkex):
    p("| figure | " + " | ".join(names) + " | " + " | ".join("%s/direct" % n for n in names[1:]) + " |")
    p("|---|" + "---:|" * (2 * len(names) - 1))
    rows = [("down_MBps", "download MB/s", "{:.1f}"), ("up_MBps", "upload MB/s", "{:.1f}"),
            ("pty_MBps", "PTY output MB/s", "{:.2f}"), ("connect_ms", "connect ms (median of runs)", "{:.0f}"),
            ("connect_p90_ms", "connect p90 ms", "{:.0f}"),
            ("echo_p50_us", "echo p50 µs", "{:.0f}"), ("echo_p99_us", "echo p99 µs", "{:.0f}")]
    for key, label, f in rows:
        cells = [fmt(bench[n].get(key), f) for n in names]
        rs = [fmt(ratio(bench[n].get(key), base.get(key)), "{:.2f}×") for n in names[1:]]
        p("| %s | %s | %s |" % (label, " | ".join(cells), " | ".join(rs)))
    p()
    p("Per-rep values (to judge the noise):")
    p()
    for key, f in [("down_MBps_runs", "{:.0f}"), ("up_MBps_runs", "{:.0f}"), ("pty_Bps_runs", None),
                   ("connect_ms_runs", "{:.0f}"), ("echo_p50_us_runs", "{:.0f}"), ("echo_p99_us_runs", "{:.0f}")]:
        vals = []
        for n in names:
            xs = bench[n].get(key) or []
            if f is None:
                xs = [x / 1e6 for x in xs]
                vals.append("%s %s" % (n, runs(xs, "{:.1f}")))
            else:
                vals.append("%s %s" % (n, runs(xs, f)))
        p("- `%s`: %s" % (key, "; ".join(vals)))
    fails = {n: bench[n].get("failures") for n in names if bench[n].get("failures")}
    if fails:
        p("- **failed runs**: %s" % fails)
    p()
    if defkex:
        dd, pd = defkex.get("direct-defaultkex", {}), defkex.get("portcullis-defaultkex", {})
        p("Connect with OpenSSH's default KexAlgorithms (not like for like, see key exchange): direct %s ms, "
          "portcullis %s ms (%s)." % (fmt(dd.get("connect_ms"), "{:.0f}"), fmt(pd.get("connect_ms"), "{:.0f}"),
                                      fmt(ratio(pd.get("connect_ms"), dd.get("connect_ms")), "{:.2f}×")))
        p()


def teardown(c, gk):
    """Per measured group: idle -> after process counts (ssh-concurrency waits <= 30 s)."""
    return ", ".join("%s %d→%d" % (k, c["idle"][k]["procs"], c["after"][k]["procs"]) for k in c["idle"])


def main():
    d = sys.argv[1]
    machine = {}
    if os.path.exists(os.path.join(d, "machine.txt")):
        for line in open(os.path.join(d, "machine.txt")):
            k, _, v = line.partition(": ")
            machine[k.strip()] = v.strip()
    bench = {l["target"]: l for l in jsonl(os.path.join(d, "bench.jsonl")) if "target" in l}
    defkex = {l["target"]: l for l in jsonl(os.path.join(d, "bench-defkex.jsonl")) if "target" in l}
    conc = {l["label"]: l for l in jsonl(os.path.join(d, "concurrency.jsonl"))}
    mem = {}
    for l in jsonl(os.path.join(d, "memory.jsonl")):
        mem[l["phase"]] = l
    rec = {}
    if os.path.exists(os.path.join(d, "recording.json")):
        try:
            rec = json.load(open(os.path.join(d, "recording.json")))
        except ValueError:
            rec = {}
    kex = open(os.path.join(d, "kex.txt")).read() if os.path.exists(os.path.join(d, "kex.txt")) else ""

    p = print
    p("# portcullis benchmark — %s" % machine.get("date", "?"))
    p()
    p("machine: %s × %s, %s, %s; %s; %s; russh %s; portcullis %s" % (
        machine.get("nproc"), machine.get("cpu"), machine.get("kernel"), machine.get("mem"),
        machine.get("openssh"), machine.get("rustc"), machine.get("russh"), machine.get("portcullis")))
    p()
    p("load: before `%s`; after `%s`; cargo/rustc running before: %s, after: %s" % (
        machine.get("load_before", "?").split("load average:")[-1].strip(),
        machine.get("load_after", "?").split("load average:")[-1].strip(),
        machine.get("cargo_running_before", "?"), machine.get("cargo_running_after", "?")))
    p()
    p("reps %s (medians), KexAlgorithms pinned to `%s` on every OpenSSH client; recordings.max_bytes %s%s" % (
        machine.get("reps"), machine.get("kex_pin"), machine.get("rec_max_bytes"),
        "; **SMOKE run (tiny sizes), figures meaningless**" if machine.get("smoke") not in (None, "", "0") else ""))
    p()
    base = bench.get("direct", {})
    names = [t for t in TARGETS if t in bench]
    if names:
        bench_table(p, bench, base, names, defkex)
    p("Key exchange and cipher negotiated per hop:")
    p()
    p("```")
    p(kex.strip())
    p("```")
    p()

    # concurrency
    p("| concurrency | sessions ok / alive | open s | gateway PSS idle → loaded → after close (MiB) | per session PSS KiB | per session RSS KiB | node sshd PSS/session KiB | server side back to idle procs |")
    p("|---|---:|---:|---|---:|---:|---:|---|")
    for label, c in conc.items():
        gk = "gw" if "gw" in c["idle"] else ("jump_sshd" if "jump_sshd" in c["idle"] else None)
        per = c["per_session"].get(gk, {}) if gk else {}
        node = c["per_session"].get("node_sshd", {})
        after = ""
        if gk == "gw":
            a = mem.get("conc_after_10s", {}).get("mem", {}).get("Pss")
            after = " → %s (10 s after drain)" % fmt(a / 1024 if a else None)
            b = mem.get("conc_after_pool_idle", {})
            if b:
                after += " → %s (%s s, pooled node connections reaped)" % (
                    fmt(b["mem"]["Pss"] / 1024), b.get("wait_s"))
        elif gk:
            after = " → %s" % fmt(c["after"][gk]["pss_kb"] / 1024)
        p("| %s (%s) | %d / %d | %.1f | %s → %s%s | %s | %s | %s | %s |" % (
            label, gk, c["ok"], c["alive"], c["open_s"],
            fmt(c["idle"][gk]["pss_kb"] / 1024) if gk else "–", fmt(c["loaded"][gk]["pss_kb"] / 1024) if gk else "–",
            after, fmt(per.get("pss_kb_per_session"), "{:.0f}"), fmt(per.get("rss_kb_per_session"), "{:.0f}"),
            fmt(node.get("pss_kb_per_session"), "{:.0f}"), teardown(c, gk)))
    p()
    if mem:
        p("Gateway memory by phase (KiB; cpu_s = the gateway's user+sys CPU so far):")
        p()
        p("| phase | live sessions | node sshd procs | PSS | RSS | anon RSS | threads | cpu_s |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|")
        for ph, l in mem.items():
            m = l["mem"]
            extra = ""
            if "drain_s" in l:
                extra = " (all ended after %s s)" % l["drain_s"] if l["drain_s"] >= 0 else " (not all ended within 30 s)"
            if "wait_s" in l:
                extra = " (%s s after close)" % l["wait_s"]
            p("| %s%s | %s | %s | %s | %s | %s | %s | %s |" % (
                ph, extra, l.get("active_sessions", "?"), l.get("node_sshd_procs", "?"), m.get("Pss"), m.get("VmRSS"),
                m.get("RssAnon"), m.get("Threads"), m.get("cpu_s")))
        p()
    if rec:
        p("Recordings (file bytes / output bytes recorded, from the .cast files):")
        p()
        for suf, label in [("/dev/zero | base64", "PTY figure (base64 text)"), ("/dev/zero", "download (NUL bytes)"),
                           ("exec cat", "keystroke echo (1 byte per event)")]:
            r = rec.get(suf)
            if r and r.get("output_bytes"):
                p("- %s: %d files, %.1f MB file / %.1f MB output = **%.3f bytes/byte**%s" % (
                    label, r["files"], r["file_bytes"] / 1e6, r["output_bytes"] / 1e6, r["bytes_per_byte"] or 0,
                    ", %d capped at recordings.max_bytes" % r["capped"] if r["capped"] else ""))
        p()

    # targets
    p("## Issue 7 targets")
    p()
    p("| target | measured | verdict |")
    p("|---|---|---|")
    pc = bench.get("portcullis", {})

    def verdict(ok):
        return "–" if ok is None else ("**met**" if ok else "**not met**")

    for key, label in [("down_MBps", "download ≥ 0.9× direct"), ("up_MBps", "upload ≥ 0.9× direct"),
                       ("pty_MBps", "PTY output ≥ 0.9× direct")]:
        r = ratio(pc.get(key), base.get(key))
        p("| %s | %s | %s |" % (label, fmt(r, "{:.2f}×"), verdict(None if r is None else r >= 0.9)))
    r = ratio(pc.get("connect_ms"), base.get("connect_ms"))
    p("| connect ≤ 1.0× direct, same KEX (`%s`) | %s (%s vs %s ms) | %s |" % (
        machine.get("kex_pin"), fmt(r, "{:.2f}×"), fmt(pc.get("connect_ms"), "{:.0f}"),
        fmt(base.get("connect_ms"), "{:.0f}"), verdict(None if r is None else r <= 1.0)))
    a, b = pc.get("echo_p50_us"), base.get("echo_p50_us")
    p("| echo p50 ≤ direct + 100 µs | %s µs vs %s µs (+%s) | %s |" % (
        fmt(a, "{:.0f}"), fmt(b, "{:.0f}"), fmt(a - b if a is not None and b is not None else None, "{:.0f}"),
        verdict(None if a is None or b is None else a <= b + 100)))
    a, b = pc.get("echo_p99_us"), base.get("echo_p99_us")
    p("| echo p99 ≤ direct p99 | %s µs vs %s µs | %s |" % (
        fmt(a, "{:.0f}"), fmt(b, "{:.0f}"), verdict(None if a is None or b is None else a <= b)))
    c = next((v for k, v in conc.items() if k.startswith("portcullis-")), None)
    if c:
        per = c["per_session"]["gw"]["pss_kb_per_session"]
        idle = mem.get("conc_idle", {}).get("mem", {}).get("Pss")
        loaded = c["loaded"]["gw"]["pss_kb"]
        late = mem.get("conc_after_pool_idle") or mem.get("conc_after_10s") or {}
        after = late.get("mem", {}).get("Pss")
        after_s = late.get("wait_s", 10)
        note = "" if c["n"] >= 1000 else " (N=%d; the target is at N=1000: CONC_N=1000)" % c["n"]
        p("| %d concurrent recorded PTY sessions all alive%s | %d / %d alive | %s |" % (
            c["n"], note, c["alive"], c["n"], verdict(c["alive"] == c["n"])))
        p("| gateway PSS ≤ 100 KiB per session | %s KiB | %s |" % (fmt(per, "{:.0f}"), verdict(None if per is None else per <= 100)))
        if idle and after is not None:
            back = (loaded - after) / (loaded - idle) if loaded > idle else 1.0
            live = late.get("active_sessions")
            p("| back near idle after close (≥ 90 %% of the growth returned, no session left) | idle %.1f → loaded %.1f → %.1f MiB %s s after the clients closed (%.0f %% returned); sessions still live then: %s | %s |" % (
                idle / 1024, loaded / 1024, after / 1024, after_s, 100 * back, live, verdict(back >= 0.9 and not live)))
    r = rec.get("/dev/zero | base64")
    if r and r.get("bytes_per_byte"):
        p("| recording ≤ 1.1 bytes per byte of text output (PTY figure) | %.3f | %s |" % (
            r["bytes_per_byte"], verdict(r["bytes_per_byte"] <= 1.1)))
    web = {}
    if os.path.exists(os.path.join(d, "web-terminal.json")):   # WEB=1: lib/web.sh
        try:
            web = json.load(open(os.path.join(d, "web-terminal.json"))).get("figures", {})
        except ValueError:
            web = {}
    w, wd = web.get("web", {}), web.get("direct", {})
    if w.get("pty_MBps") is not None and wd.get("pty_MBps"):
        r = w["pty_MBps"] / wd["pty_MBps"]
        p("| web terminal PTY output ≥ 0.9× direct | %.2f× (%.2f vs %.2f MB/s) | %s |" % (
            r, w["pty_MBps"], wd["pty_MBps"], verdict(r >= 0.9)))
    if w.get("echo_p50_us") is not None and wd.get("echo_p50_us") is not None:
        diff = w["echo_p50_us"] - wd["echo_p50_us"]
        p("| web terminal echo p50 ≤ direct + 100 µs | %.0f µs vs %.0f µs (%+.0f) | %s |" % (
            w["echo_p50_us"], wd["echo_p50_us"], diff, verdict(diff <= 100)))
        p("| web terminal echo p99 ≤ direct p99 | %.0f µs vs %.0f µs | %s |" % (
            w["echo_p99_us"], wd["echo_p99_us"], verdict(w["echo_p99_us"] <= wd["echo_p99_us"])))
    if not w:
        p("| web terminal (WebSocket) throughput / echo | not measured in this run (WEB=1 bench/run, or bench/web-terminal) | – |")
    p("| 10,000 idle agent tunnels ≤ 200 MB RSS | not measured here (agents in progress) | – |")
    if os.path.exists(os.path.join(d, "web-terminal.txt")):
        p()
        p("#" + open(os.path.join(d, "web-terminal.txt")).read().rstrip())


if __name__ == "__main__":
    main()
