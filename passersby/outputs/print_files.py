"""Print-ready files of a page (outputs/printing.py): PNG or TIFF, and PDF, all sRGB-tagged.

- PNG: pHYs at the print's dpi, the sRGB ICC profile (iCCP), provenance as text chunks
  (Title, Author, Description, Creation Time, Software, and "passersby" = the whole record as JSON).
- TIFF: LZW, the resolution in dpi, the ICC profile, provenance as tags (ImageDescription =
  the JSON record, Artist, Software, DateTime, DocumentName = the title).
- PDF: one page of the paper's exact size in points (A4: 595.276 x 841.890), the picture
  losslessly embedded with its ICC profile (an ICCBased colour space, img2pdf), the provenance
  in the document information (Title, Author, Subject = the JSON record, Keywords, Creator).

Every file is written to a temporary file, flushed to disk and renamed (passersby.atomic), so a
crash never leaves half a print under its name.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from passersby.atomic import atomic_open
from passersby.outputs.printing import PAPER_MM, Provenance, srgb_profile

AUTHOR = "passersby"


def _write(path: Path, data: bytes) -> Path:
    with atomic_open(Path(path), "wb") as f:
        f.write(data)
    return Path(path)


def png_bytes(page: Image.Image, dpi: int, prov: Provenance) -> bytes:
    """The page as PNG bytes with dpi, ICC profile and provenance text."""
    info = PngInfo()
    record = prov.to_dict()
    for key, value in (("Title", prov.title), ("Author", AUTHOR), ("Creation Time", prov.date),
                       ("Software", f"passersby print ({prov.upscaled_with})"),
                       ("Description", " / ".join(prov.label_lines())), ("passersby", json.dumps(record, sort_keys=True))):
        info.add_itxt(key, value)
    buf = io.BytesIO()
    page.save(buf, "PNG", pnginfo=info, dpi=(dpi, dpi), icc_profile=srgb_profile(), compress_level=6)
    return buf.getvalue()


def write_png(page: Image.Image, path: Path, dpi: int, prov: Provenance) -> Path:
    return _write(path, png_bytes(page, dpi, prov))


def write_tiff(page: Image.Image, path: Path, dpi: int, prov: Provenance) -> Path:
    """The page as an LZW TIFF with dpi, ICC profile and provenance tags."""
    now = datetime.now(timezone.utc).strftime("%Y:%m:%d %H:%M:%S")
    tags = {270: json.dumps(prov.to_dict(), sort_keys=True), 315: AUTHOR, 305: "passersby print",
            306: now, 269: prov.title}
    buf = io.BytesIO()
    page.save(buf, "TIFF", compression="tiff_lzw", dpi=(dpi, dpi), icc_profile=srgb_profile(), tiffinfo=tags)
    return _write(path, buf.getvalue())


def write_pdf(page: Image.Image, path: Path, paper: str, dpi: int, prov: Provenance) -> Path:
    """One page of exactly the paper's size, the picture (PNG, with its ICC profile) filling it."""
    import img2pdf

    w_mm, h_mm = PAPER_MM[paper]
    size = (img2pdf.mm_to_pt(w_mm), img2pdf.mm_to_pt(h_mm))
    layout = img2pdf.get_layout_fun(size, fit=img2pdf.FitMode.exact)
    data = img2pdf.convert(png_bytes(page, dpi, prov), layout_fun=layout, title=prov.title, author=AUTHOR,
                           subject=json.dumps(prov.to_dict(), sort_keys=True), creator="passersby print",
                           keywords=["passersby", "generated portrait", prov.model_hash],
                           creationdate=datetime.now(timezone.utc))
    return _write(path, data)


def write_pdf_pages(pages: list[Image.Image], path: Path, paper: str, dpi: int, title: str, subject: str = "") -> Path:
    """Several pages (each the paper's pixel size at `dpi`) as one PDF of the paper's exact size."""
    import img2pdf

    w_mm, h_mm = PAPER_MM[paper]
    layout = img2pdf.get_layout_fun((img2pdf.mm_to_pt(w_mm), img2pdf.mm_to_pt(h_mm)), fit=img2pdf.FitMode.exact)
    prov = Provenance(title, "", "", None)
    data = img2pdf.convert([png_bytes(p, dpi, prov) for p in pages], layout_fun=layout, title=title, author=AUTHOR,
                           subject=subject, creator="passersby gallery", creationdate=datetime.now(timezone.utc))
    return _write(path, data)
