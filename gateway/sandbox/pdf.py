"""A one-page PDF 1.4 document of plain text, built by hand: the bank's statement files need nothing more.

The output depends only on the arguments (the creation date is one of them), so the same statement is always the
same bytes. Text is set in the standard Helvetica fonts, which every reader has, in WinAnsi encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

_LEFT, _TOP, _LEADING = 56, 780, 18  # points from the bottom-left corner of an A4 page (595 x 842)


def _text(value: str) -> bytes:
    """A PDF literal string."""
    escaped = value.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("cp1252", errors="replace") + b")"


def _content(title: str, lines: Sequence[str]) -> bytes:
    ops = [b"BT", b"/F2 16 Tf", b"%d %d Td" % (_LEFT, _TOP), _text(title) + b" Tj", b"ET",
           b"BT", b"/F1 11 Tf", b"%d TL" % _LEADING, b"%d %d Td" % (_LEFT, _TOP - 2 * _LEADING)]
    ops += [_text(line) + b" Tj T*" for line in lines]
    ops.append(b"ET")
    return b"\n".join(ops)


def text_page(title: str, lines: Sequence[str], author: str, created: datetime) -> bytes:
    """A PDF of one A4 page: `title` in bold, then `lines` one under another."""
    content = _content(title, lines)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Title %s /Author %s /Producer %s /CreationDate %s >>"
        % (_text(title), _text(author), _text(author), _text(f"D:{created:%Y%m%d%H%M%S}Z")),
    ]
    # A binary comment after the header tells transfer tools the file is not text.
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF" % (
        len(objects) + 1, len(objects), xref)
    return bytes(out)
