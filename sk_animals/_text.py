"""Text from file and class names made safe for the reader it goes to.

A spreadsheet runs a cell that starts like a formula, Markdown renders markup and a
terminal obeys escape codes; a name is data for each of them. JSON needs none of this:
it keeps the exact names.
"""

import re

__all__ = ["csv_cell", "first_line", "markdown_text", "readable_text", "terminal_text"]

#: The first characters that make a spreadsheet read a cell as a formula (OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_MARKUP = re.compile(r"[\\`*_\[\]<>&|#~]")
_LIST_MARKER = re.compile(r"^([-+]|\d+)([.)]?)(?=\s|$)")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def first_line(exc):
    r"""An exception's reason in one line: its message's first line, else its type's name.

    Examples
    --------
    >>> from sk_animals._text import first_line
    >>> first_line(ValueError("bad size\nTraceback details")), first_line(KeyError())
    ('bad size', 'KeyError')
    """
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def csv_cell(text):
    """``text`` for a CSV cell: a leading ``'`` when it starts like a formula (OWASP).

    A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
    single quote in front, which spreadsheets show as text, not as a formula; so does one
    that starts with a quote, so that the rule reverses exactly: the original is the cell
    with one leading ``'`` removed when the rest starts with one of these characters or
    with a quote.

    Examples
    --------
    >>> csv_cell("=HYPERLINK(1)"), csv_cell("'s-Hertogenbosch"), csv_cell("cat")
    ("'=HYPERLINK(1)", "''s-Hertogenbosch", 'cat')
    """
    text = str(text)
    return "'" + text if text.startswith((*FORMULA_STARTS, "'")) else text


def _list_marker(match):
    marker, dot = match.groups()
    if marker in "-+":
        return "\\" + marker + dot
    return f"{marker}\\{dot}" if dot else marker


def readable_text(text):
    """``text`` writable as UTF-8: the bytes of a name that is not UTF-8 shown as ``\\xNN``.

    Python gives such a name with surrogate escapes (``os.fsdecode(b"cat\\xff.png")``),
    which no UTF-8 file can hold; each becomes the four characters ``\\xNN`` of its byte,
    as :func:`terminal_text` shows it. The JSON outputs keep the exact name.

    Examples
    --------
    >>> import os
    >>> print(readable_text(os.fsdecode(b"cat\\xff.png")))
    cat\\xff.png
    """
    return _SURROGATE.sub(_escape, str(text))


def markdown_text(text, *, block=True):
    """``text`` as literal Markdown: markup, table separators and line breaks escaped.

    Backslash, backtick, ``*``, ``_``, brackets, ``<``, ``>``, ``&``, ``|``, ``#`` and
    ``~`` are backslash-escaped and a line break becomes ``<br>``, so the text renders as
    itself and stays in its table cell. With ``block``, a leading list marker (``-``,
    ``+``, ``1.``) is escaped too, for text that starts a paragraph or an item. The bytes
    of a name that is not UTF-8 show as ``\\xNN`` (:func:`readable_text`).

    Examples
    --------
    >>> markdown_text("<b>cat|dog</b>")
    '\\\\<b\\\\>cat\\\\|dog\\\\</b\\\\>'
    """
    text = _MARKUP.sub(lambda m: "\\" + m.group(), readable_text(text))
    if block:
        text = _LIST_MARKER.sub(_list_marker, text)
    return _NEWLINE.sub("<br>", text)


def _escape(match):
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a name that is not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_text(text, *, keep_newlines=False):
    """``text`` with control characters shown as escapes, for a terminal.

    C0 and C1 control characters (escape codes included), DEL, the bidirectional
    overrides and the bytes of a name that is not UTF-8 become ``\\xNN`` (``\\uNNNN``),
    so a name can neither drive the terminal nor disguise itself. With
    ``keep_newlines``, line breaks stay (a message of several lines).

    Examples
    --------
    >>> print(terminal_text("cat\\x1b[2J.png"))
    cat\\x1b[2J.png
    """
    if keep_newlines:
        return "\n".join(terminal_text(line) for line in str(text).split("\n"))
    return _CONTROL.sub(_escape, str(text))
