"""A minimal, dependency-free reader for the first worksheet of an ``.xlsx`` file (values only).

SPAQ ships its annotation as ``MOS and Image attribute scores.xlsx``; openpyxl is not a project dependency, and an
``.xlsx`` file is a zip of XML parts, so the cell values of one sheet are easy to read with the standard library:
``xl/workbook.xml`` names the sheets, ``xl/_rels/workbook.xml.rels`` maps them to parts, ``xl/sharedStrings.xml``
holds the strings that cells of type ``s`` index into. Formulas give their cached value; styles, dates and merged
cells are not interpreted (numbers come back as their text).

Library module, no entry point.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

from piaa.schema import SchemaError

NS = {
    "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "rel": "http://schemas.openxmlformats.org/package/2006/relationships",
}
_REF = re.compile(r"([A-Z]+)(\d+)")
MAX_PART_BYTES = 512 * 1024 * 1024


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def _text(el: ET.Element | None) -> str:
    """All text of a string item (plain ``<t>`` or rich-text runs ``<r><t>``)."""
    if el is None:
        return ""
    return "".join(t.text or "" for t in el.iter(f"{{{NS['m']}}}t"))


def _part(z: zipfile.ZipFile, name: str, path: Path) -> ET.Element:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise SchemaError(f"{path}: not a valid .xlsx (missing part {name})") from None
    if info.file_size > MAX_PART_BYTES:
        raise SchemaError(f"{path}: part {name} is implausibly large ({info.file_size} bytes)")
    try:
        return ET.fromstring(z.read(name))
    except ET.ParseError as err:
        raise SchemaError(f"{path}: malformed XML in {name} ({err})") from None


def _first_sheet_part(z: zipfile.ZipFile, path: Path) -> str:
    wb = _part(z, "xl/workbook.xml", path)
    sheet = wb.find("m:sheets/m:sheet", NS)
    if sheet is None:
        raise SchemaError(f"{path}: the workbook has no sheets")
    rid = sheet.get(f"{{{NS['r']}}}id")
    if "xl/_rels/workbook.xml.rels" in z.namelist() and rid:
        rels = _part(z, "xl/_rels/workbook.xml.rels", path)
        for rel in rels.findall("rel:Relationship", NS):
            if rel.get("Id") == rid:
                target = rel.get("Target", "").lstrip("/")
                return target if target.startswith("xl/") else f"xl/{target}"
    return "xl/worksheets/sheet1.xml"


def read_xlsx_rows(path: str | Path) -> list[tuple[int, list[str]]]:
    """``(row_number, cell texts)`` for every non-empty row of the first sheet; gaps between cells become ``""``."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: missing file")
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise SchemaError(f"{path}: not a valid .xlsx (not a zip archive)") from None
    with z:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in z.namelist():
            sst = _part(z, "xl/sharedStrings.xml", path)
            shared = [_text(si) for si in sst.findall("m:si", NS)]
        sheet = _part(z, _first_sheet_part(z, path), path)
    out: list[tuple[int, list[str]]] = []
    for row in sheet.iterfind("m:sheetData/m:row", NS):
        cells: dict[int, str] = {}
        rnum = int(row.get("r", len(out) + 1))
        for j, c in enumerate(row.findall("m:c", NS)):
            m = _REF.fullmatch(c.get("r", ""))
            col = _col_index(m.group(1)) if m else j
            typ = c.get("t", "n")
            if typ == "inlineStr":
                val = _text(c.find("m:is", NS))
            else:
                v = c.find("m:v", NS)
                val = v.text if v is not None and v.text is not None else ""
                if typ == "s" and val:
                    try:
                        val = shared[int(val)]
                    except (ValueError, IndexError):
                        raise SchemaError(f"{path}: row {rnum}: bad shared-string index {val!r}") from None
                elif typ == "b":
                    val = "TRUE" if val == "1" else "FALSE"
            cells[col] = val.strip()
        if any(cells.values()):
            width = max(cells) + 1
            out.append((rnum, [cells.get(k, "") for k in range(width)]))
    return out
