"""A plain-text PDF (Courier, A4, as many pages as the lines need), for usage statements.

Enough of PDF 1.4 for monospaced text: a catalog, a page tree, one content stream per page
and the built-in Courier font (no embedding). Text outside Latin-1 becomes `?`.
"""

from __future__ import annotations

LINES_PER_PAGE = 60
_WIDTH, _HEIGHT, _LEFT, _TOP, _LEADING, _SIZE = 595, 842, 50, 792, 12, 9


def _escape(line: str) -> str:
    text = line.encode("latin-1", "replace").decode("latin-1")
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _wrap(lines: list[str], width: int = 95) -> list[str]:
    out: list[str] = []
    for line in lines:
        while len(line) > width:
            cut = line.rfind(" ", 0, width)
            cut = cut if cut > 0 else width
            out.append(line[:cut])
            line = line[cut:].lstrip()
        out.append(line)
    return out


def text_pdf(lines: list[str]) -> bytes:
    wrapped = _wrap(lines) or [""]
    pages = [wrapped[i:i + LINES_PER_PAGE] for i in range(0, len(wrapped), LINES_PER_PAGE)]
    objects: list[bytes] = []  # object n is objects[n - 1]
    font = 3
    kids = []
    objects += [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>"]
    for chunk in pages:
        body = f"BT /F1 {_SIZE} Tf {_LEADING} TL {_LEFT} {_TOP} Td\n" + "".join(
            f"({_escape(line)}) Tj T*\n" for line in chunk) + "ET"
        stream = body.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content = len(objects)
        objects.append((f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_WIDTH} {_HEIGHT}] "
                        f"/Resources << /Font << /F1 {font} 0 R >> >> "
                        f"/Contents {content} 0 R >>").encode())
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = (f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] "
                  f"/Count {len(kids)} >>").encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += (b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, xref))
    return bytes(out)
