#!/usr/bin/env python3
"""caststats: recording bytes per byte of terminal output, from the .cast files.

Usage: caststats.py RECORDINGS_DIR TITLE_SUFFIX [TITLE_SUFFIX...] > recording.json

For every .cast whose header title ends with one of the suffixes (the title is
"login@node (user): COMMAND"), reads the events and reports: file size, output
bytes recorded (UTF-8 length of the "o" data, not counting the gateway's own
cap note), and whether the recording was capped. The ratio is file bytes /
recorded output bytes, so a capped file is still judged on what it holds.
"""
import glob
import json
import os
import sys

CAP_NOTE = "[portcullis: recording capped at"


def stats(path):
    size = os.path.getsize(path)
    out = 0
    events = 0
    capped = False
    with open(path, "rb") as f:
        header = json.loads(f.readline())
        for raw in f:
            try:
                t, code, data = json.loads(raw)
            except ValueError:
                continue   # a torn last line
            if code != "o":
                continue
            if CAP_NOTE in data:
                capped = True
                continue
            events += 1
            out += len(data.encode("utf-8"))
    return {"file": os.path.basename(path), "title": header.get("title"), "file_bytes": size,
            "output_bytes": out, "events": events, "capped": capped,
            "bytes_per_byte": size / out if out else None}


def main():
    root, suffixes = sys.argv[1], sys.argv[2:]
    res = {}
    for path in sorted(glob.glob(os.path.join(root, "*", "*.cast"))):
        try:
            with open(path, "rb") as f:
                title = json.loads(f.readline()).get("title") or ""
        except (OSError, ValueError):
            continue
        for suf in suffixes:
            if title.endswith(suf):
                res.setdefault(suf, []).append(stats(path))
    summary = {}
    for suf, items in res.items():
        fb = sum(i["file_bytes"] for i in items)
        ob = sum(i["output_bytes"] for i in items)
        summary[suf] = {"files": len(items), "file_bytes": fb, "output_bytes": ob,
                        "bytes_per_byte": fb / ob if ob else None,
                        "capped": sum(1 for i in items if i["capped"]), "each": items}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
