#!/usr/bin/env python3
"""proctree.py PID [COMM_REGEX]: how many live processes PID and its descendants are (optionally only those whose comm matches)."""
import os
import re
import sys


def stat(pid):
    try:
        s = open("/proc/%d/stat" % pid).read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return None if rest[0] in ("Z", "X") else (comm, int(rest[1]))


table = {int(p): stat(int(p)) for p in os.listdir("/proc") if p.isdigit()}
kids = {}
for p, st in table.items():
    if st:
        kids.setdefault(st[1], []).append(p)
root = int(sys.argv[1])
rx = re.compile(sys.argv[2]) if len(sys.argv) > 2 else None
n, todo = 0, [root]
while todo:
    p = todo.pop()
    if not table.get(p):
        continue
    if rx is None or rx.search(table[p][0]):
        n += 1
    todo.extend(kids.get(p, []))
print(n)
