"""PURE: untrusted text (wire strings: client ids, topics, group ids, headers, error messages)
made safe to print on a terminal.

    print(terminal_safe(frame.client_id))

Every character that is not printable (str.isprintable: C0 and C1 controls, DEL, the Unicode
format characters such as the bidi overrides and isolates, the line and paragraph separators,
lone surrogates) is written as an escape, the way repr writes it: \\xHH, \\uHHHH or \\UHHHHHHHH.
Printable text, the common case, comes back unchanged (the same object). Only for human-readable
output: JSON output is escaped by its encoder.
"""

from __future__ import annotations


def terminal_safe(text: str) -> str:
    """`text` with every non-printable character escaped (\\x1b, \\u202e, ...)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ord(ch)) for ch in text)


def _escape(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal_safe_lines(text: str) -> str:
    """terminal_safe on each line of a multi-line text (its "\\n"s stay line breaks)."""
    return "\n".join(terminal_safe(line) for line in text.split("\n"))


__all__ = ["terminal_safe", "terminal_safe_lines"]
