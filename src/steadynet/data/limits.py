"""Limits every reader applies before it allocates or decompresses: what a file may claim.

A data file states how many images it holds (an IDX or ``.npy`` header, an HDF5 dataset's
shape), and a compressed one expands to that many bytes. Both are checked against what is on
disk before any memory is taken:

- **regular files only**: a path is resolved through its links and must be a regular file
  (``os.stat`` first, so a FIFO is never opened and a device such as ``/dev/zero`` never
  read);
- **expansion**: a compressed stream (a deflated NPZ member, a gzipped IDX or CSV file, an
  HDF5 dataset's chunks) may claim at most :data:`EXPANSION_FLOOR` bytes whatever its size,
  and beyond that at most :data:`MAX_EXPANSION` times the bytes it occupies on disk. MNIST's
  files expand 2-6x; a decompression bomb 1,000x or more, and is refused from its header,
  before a byte of it is decompressed;
- and a stream is never decompressed past what its header claims.

Every refusal is one :class:`DataFormatError` line naming the file.
"""

import os
import stat

from ..errors import DataFormatError

EXPANSION_FLOOR = 64 << 20  # 64 MiB: any file may expand to this much (small files compress well)
MAX_EXPANSION = 100  # beyond the floor, decompressed bytes per stored byte


def regular_file(path, what="data file", error=DataFormatError):
    """``path`` (a str) if it is, after resolving links, a regular file; else one-line error.

    Uses ``os.stat`` only: a FIFO is never opened (that would block) and a device never read.

    Returns
    -------
    size : int
        The file's size in bytes.

    Raises
    ------
    DataFormatError, or ``error``
        If there is no such file, or it is a folder, FIFO, device or socket.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file.") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(st.st_mode)
            else "a FIFO (named pipe)"
            if stat.S_ISFIFO(st.st_mode)
            else "a device"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "not a regular file"
        )
        raise error(f"{path}: expected a regular {what}, found {kind}.")
    return st.st_size


def allowed_expansion(stored):
    """How many bytes a compressed stream of ``stored`` bytes may expand to."""
    return max(EXPANSION_FLOOR, MAX_EXPANSION * int(stored))


def check_expansion(where, claimed, stored):
    """Raise unless ``claimed`` decompressed bytes from ``stored`` on disk are within the limit.

    Parameters
    ----------
    where : str
        Names the file (and member or dataset) for the message.
    claimed : int
        Bytes the header says the data holds (images x pixels x itemsize, plus any header).
    stored : int
        Bytes the data occupies on disk.
    """
    limit = allowed_expansion(stored)
    if claimed > limit:
        raise DataFormatError(
            f"{where}: claims {claimed:,} bytes of data from {stored:,} bytes on disk; "
            f"at most {MAX_EXPANSION}x (and {EXPANSION_FLOOR >> 20} MiB for any file) is "
            f"accepted: a decompression bomb, or a header declaring data the file does not hold."
        )


def gunzip_bounded(raw, where):
    """Undo gzip (one or more members) on ``raw`` bytes, refusing output beyond
    :func:`allowed_expansion` of ``len(raw)``: the bomb stops at the limit, not at the end."""
    import zlib

    limit = allowed_expansion(len(raw))
    out, data = [], raw
    total = 0
    while data:
        d = zlib.decompressobj(wbits=31)  # one gzip member
        try:
            chunk = d.decompress(data, limit - total + 1)
        except zlib.error as exc:
            raise DataFormatError(f"{where}: gzip data is corrupt ({exc}).") from None
        total += len(chunk)
        if total > limit or d.unconsumed_tail:
            raise DataFormatError(
                f"{where}: expands past {limit:,} bytes from {len(raw):,} compressed; at most "
                f"{MAX_EXPANSION}x (and {EXPANSION_FLOOR >> 20} MiB for any file) is accepted, so "
                f"this is a decompression bomb."
            )
        if not d.eof:
            raise DataFormatError(f"{where}: gzip data is truncated (the stream ends early).")
        out.append(chunk)
        data = d.unused_data
        if data.strip(b"\x00") == b"":  # trailing zero padding, as some tools write
            break
    return b"".join(out)
