"""EDGE: the files a user names — regular files only, and text read whole only up to a bound.

Every file kshock is given by name comes through here: captures (`open_capture`: mapped by the
capture reader, never copied into memory), rule files and shell scripts (`read_text`: read
whole, so capped), the shell's history (`check_text_file`: prompt_toolkit reads it whole). A
FIFO, a device (/dev/zero, /dev/urandom), a directory or a socket is refused in one line before
a byte is read: none of them has an end kshock can rely on, and an unbounded read() of
/dev/zero is how a rule file once took 4 GB. Symlinks are followed; what counts is the file
they lead to. The text bound is 1 MiB; KSHOCK_MAX_TEXT_MIB (1 to 1024) lifts it.

    text = read_text("rules/x.yaml", "rule file")   # str, or a UserError naming the problem
    with open_capture("x.pcap") as f: ...           # a binary file object of a regular file
"""

from __future__ import annotations

import os
import stat
import sys
from typing import BinaryIO

from kshock.errors import UserError

TEXT_LIMIT_ENV = "KSHOCK_MAX_TEXT_MIB"
DEFAULT_TEXT_MIB = 1  # rule files and scripts are a few KB; 1 MiB is generous
MAX_TEXT_MIB = 1024

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def text_limit_bytes() -> int:
    """The bound on a text input in bytes: KSHOCK_MAX_TEXT_MIB (1 to 1024), default 1 MiB."""
    raw = os.environ.get(TEXT_LIMIT_ENV, "").strip()
    if not raw:
        return DEFAULT_TEXT_MIB << 20
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_TEXT_MIB):
        raise UserError(f"{TEXT_LIMIT_ENV}={raw[:20]!r} is not a size in MiB",
                        f"set it to a whole number from 1 to {MAX_TEXT_MIB}, or unset it (default {DEFAULT_TEXT_MIB})")
    return int(raw) << 20


def open_capture(path: str | os.PathLike) -> BinaryIO:
    """A capture file opened for reading (binary); refuses anything but a regular file."""
    return _open_regular(path, "give a pcap or pcapng saved as an ordinary file (save a pipe's output to a "
                               "file first)")


def read_text(path: str | os.PathLike, what: str) -> str:
    """A text file read whole as UTF-8, up to the text bound; one-line UserErrors for a file that
    is not regular, too large or not UTF-8 (`file:line:col: ...`, like a rule file's errors)."""
    limit = text_limit_bytes()
    with _open_regular(path, f"give a {what} saved as an ordinary file") as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(limit + 1) if size <= limit else b""
    name = os.fspath(path)
    if size > limit or len(data) > limit:
        raise UserError(f"{name} is larger than {limit >> 20} MiB, kshock's bound for a {what}",
                        f"set {TEXT_LIMIT_ENV} (MiB, at most {MAX_TEXT_MIB}) to read a larger one")
    return decode_utf8(data, name, what)


def check_text_file(path: str | os.PathLike, what: str) -> None:
    """A text file another library will read whole (the shell's history, by prompt_toolkit):
    absent, or a regular file within the text bound; a one-line UserError otherwise."""
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except FileNotFoundError:
        return  # (it will be created)
    except OSError as exc:
        raise UserError(f"cannot read {name}: {exc.strerror or exc}", "check the path and its permissions") from None
    _refuse_special(info, name, f"give a {what} saved as an ordinary file")
    limit = text_limit_bytes()
    if info.st_size > limit:
        raise UserError(f"{name} is larger than {limit >> 20} MiB, kshock's bound for a {what}",
                        f"trim or remove it, or set {TEXT_LIMIT_ENV} (MiB, at most {MAX_TEXT_MIB})")


def read_stdin_text(what: str) -> str:
    """Standard input read as text, up to the text bound (`--script -`)."""
    limit = text_limit_bytes()
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a replaced sys.stdin (tests): already text
        text = sys.stdin.read(limit + 1)
        data = text.encode("utf-8", "surrogatepass")
    else:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise UserError(f"standard input holds more than {limit >> 20} MiB, kshock's bound for a {what}",
                        f"set {TEXT_LIMIT_ENV} (MiB, at most {MAX_TEXT_MIB}) to read more")
    return decode_utf8(data, "<stdin>", what)


def decode_utf8(data: bytes, name: str, what: str) -> str:
    """UTF-8 text (a UTF-8 byte-order mark is dropped); a one-line error at the first bad byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"{name}:1:1: the {what} is UTF-16 text (it starts with a UTF-16 byte-order mark)",
                        "save it as UTF-8")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[data.rfind(b"\n", 0, exc.start) + 1 : exc.start].decode("utf-8")) + 1  # characters
        raise UserError(f"{name}:{line}:{column}: the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x})",
                        "save it as UTF-8") from None


def _open_regular(path: str | os.PathLike, hint: str) -> BinaryIO:
    name = os.fspath(path)
    try:
        _refuse_special(os.stat(name), name, hint)  # before open(): opening a FIFO blocks
        # O_NONBLOCK: a path swapped for a FIFO after the stat still cannot hang the open
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise UserError(f"cannot read {name}: {exc.strerror or exc}", "check the path and its permissions") from None
    try:
        _refuse_special(os.fstat(fd), name, hint)  # what was opened, not what was named
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _refuse_special(info: os.stat_result, name: str, hint: str) -> None:
    if stat.S_ISREG(info.st_mode):
        return
    kind = next((text for test, text in _KINDS if test(info.st_mode)), "something else")
    raise UserError(f"{name} is {kind}, not a regular file (kshock reads only regular files)", hint)


__all__ = ["DEFAULT_TEXT_MIB", "MAX_TEXT_MIB", "TEXT_LIMIT_ENV", "check_text_file", "decode_utf8", "open_capture",
           "read_stdin_text", "read_text", "text_limit_bytes"]
