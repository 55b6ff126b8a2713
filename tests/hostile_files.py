"""Hostile files built byte by byte for the tests (zip layouts NumPy would never write), and a
way to run an attack in a fresh process and read its peak memory."""

import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np

LOCAL = struct.Struct("<4sHHHHHIIIHH")  # signature, version, flags, method, time, date, crc, csize, usize, name, extra
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
END = struct.Struct("<4sHHHHIIH")


def local_header(name, data, method=0, compressed=None):
    """The 30-byte local header of a member, then its name."""
    name = name.encode()
    stored = len(data) if compressed is None else len(compressed)
    return LOCAL.pack(b"PK\x03\x04", 20, 0, method, 0, 0x21, zlib.crc32(data), stored, len(data), len(name), 0) + name


def central_entry(name, offset, data, method=0, stored=None, size=None):
    """A central-directory entry for member ``name`` whose local header is at ``offset``."""
    name = name.encode()
    stored = len(data) if stored is None else stored
    size = len(data) if size is None else size
    return (
        CENTRAL.pack(
            b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, zlib.crc32(data), stored, size, len(name), 0, 0, 0, 0, 0, offset
        )
        + name
    )


def end_record(n, directory_size, directory_offset):
    return END.pack(b"PK\x05\x06", 0, 0, n, n, directory_size, directory_offset, 0)


def npy_bytes(a):
    f = io.BytesIO()
    np.lib.format.write_array(f, np.asarray(a), allow_pickle=False)
    return f.getvalue()


def npy_header(dtype, shape):
    """The ``.npy`` magic and header alone, for data that follows it."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return f.getvalue()


def zip_of(members):
    """A plain zip of stored members ``[(name, bytes), ...]``, laid out as zipfile would."""
    body, directory = b"", b""
    for name, data in members:
        directory += central_entry(name, len(body), data)
        body += local_header(name, data) + data
    return body + directory + end_record(len(members), len(directory), len(body))


def overlapping_npz(n_members, payload_bytes):
    """A zip whose stored members nest: member i's data is a valid ``.npy`` uint8 header, then
    member i+1's local header and data, and so on; the innermost ends with ``payload_bytes``
    zeros. Read naively, it yields ``n_members`` arrays of nearly the file's size each."""
    tail = bytes(payload_bytes)
    entries = []
    for i in reversed(range(n_members)):
        name = f"a{i}.npy"
        head = npy_header(np.uint8, (len(tail),))
        data = head + tail
        tail = local_header(name, data) + data  # the next (outer) member holds all of this
        entries.append((name, data))
    body = tail  # the outermost member's local header is at 0, each inner one inside its parent's data
    directory = b""
    for name, data in reversed(entries):
        directory += central_entry(name, body.index(local_header(name, data)), data)
    return body + directory + end_record(len(entries), len(directory), len(body))


RUNNER = (
    "import resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL)\n"
    "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(p.returncode)\n"
)


def run_measured(args, timeout=120, cwd=None):
    """Run ``args`` (a command list) in a fresh process under a runner that reports its peak
    resident memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``: the attack's own process
    only, not this test process or other tests' children).

    Returns
    -------
    returncode : int
    stdout, stderr : str
        The attacked process's output (the runner's own line removed from stderr).
    peak_mb : float
    """
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    p = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )
    lines = p.stderr.splitlines()
    peak = [line for line in lines if line.startswith("PEAK_KB ")]
    stderr = "\n".join(line for line in lines if not line.startswith("PEAK_KB ")) + ("\n" if len(lines) > 1 else "")
    return p.returncode, p.stdout, stderr, int(peak[-1].split()[1]) / 1024 if peak else float("nan")


def steadynet_cli(*args):
    """The command line ``steadynet ARGS`` as this interpreter runs it."""
    return [sys.executable, "-m", "steadynet", *map(str, args)]


def python_code(code):
    return [sys.executable, "-c", code]
