"""The bank's name and logo on every customer page (settings OBGW_BANK_NAME, OBGW_BANK_LOGO), read once at start.

The logo is embedded in the page as a `data:` URI (CSP `img-src data:`), so the page still loads nothing from
anywhere, and an SVG shown through <img> runs no script.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

LOGO_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}
MAX_LOGO_BYTES = 64 * 1024
BUNDLED_LOGO = Path(__file__).parent / "static" / "logo.svg"
DEFAULT_NAME = "obgw bank"


def logo_uri(path: Path) -> str:
    """The logo file as a data: URI; ValueError naming what is wrong (type, size)."""
    kind = LOGO_TYPES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: a logo must be an .svg or .png file")
    data = path.read_bytes()
    if len(data) > MAX_LOGO_BYTES:
        raise ValueError(f"{path}: a logo must be at most {MAX_LOGO_BYTES} bytes, not {len(data)}")
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


@dataclass(frozen=True)
class Brand:
    name: str
    logo: str  # data: URI

    @classmethod
    def load(cls, name: str = DEFAULT_NAME, logo: Path | None = None) -> Brand:
        """The pages' brand from the settings `bank_name` and `bank_logo` (None: the bundled logo)."""
        return cls(name, logo_uri(logo or BUNDLED_LOGO))


DEFAULT_BRAND = Brand.load()
