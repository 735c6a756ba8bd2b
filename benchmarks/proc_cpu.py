"""CPU seconds of other processes, from /proc: what a benchmark's servers spent during a timer."""
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields from the 3rd on (the name may hold spaces)


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_of(match) -> float:
    """CPU seconds of the live processes `match(pid, fields)` selects, with the children they
    have reaped (utime + stime + cutime + cstime): Label Studio's or PostgreSQL's whole tree."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        f = _stat(pid)
        if f is None:
            continue
        if match(pid, f):
            total += sum(int(x) for x in f[11:15])
    return total / TICK


def postgres_cpu(port: int | str) -> float:
    """The PostgreSQL cluster listening on `port`: its postmaster and every backend (live or reaped)."""
    postmaster = next(pid for pid in filter(str.isdigit, os.listdir("/proc"))
                      if "/postgres -D " in (c := _cmdline(pid)) and f" -p {port} " in c)
    return cpu_of(lambda pid, f: pid == postmaster or f[1] == postmaster)
