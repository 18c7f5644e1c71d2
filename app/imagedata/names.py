"""Archive member names as their authors wrote them: decoded, then normalised to Unicode NFC.

A zip entry's name is UTF-8 when its general-purpose flag bit 11 is set, or when it carries an
Info-ZIP Unicode Path extra field (0x7075, written by 7-Zip and Info-ZIP); otherwise the
format says IBM code page 437, but archive tools write the system's OEM code page (cp866 on
Russian Windows, cp932/Shift-JIS on Japanese, ...) and many write UTF-8 without the flag. Tar
names are bytes with no declared encoding (PAX headers are UTF-8). So names without a
declared encoding are decoded together: as UTF-8 when they all are valid UTF-8, else with the
legacy code page under which they read most plausibly as words (letters of one script per
name part, no box-drawing or control characters). Then every name is normalised to NFC, so
``café`` from macOS (NFD) and from Windows (NFC) is one name.
"""

from __future__ import annotations

import itertools
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable

#: Legacy encodings tried, in order of preference on ties (the zip format's own cp437 first).
LEGACY_ENCODINGS: tuple[str, ...] = (
    "cp437",
    "cp850",
    "cp866",
    "cp852",
    "cp932",
    "gbk",
    "cp949",
    "big5",
    "cp1252",
    "cp1251",
)
_UNICODE_PATH_FIELD = 0x7075
_CJK_PREFIXES = ("CJK", "HIRAGANA", "KATAKANA", "HALFWIDTH KATAKANA")


def nfc(name: str) -> str:
    """`name` in Unicode normal form C (the composed form Windows and Linux tools write)."""
    return unicodedata.normalize("NFC", name)


def zip_unicode_path(info: zipfile.ZipInfo, raw: bytes) -> str | None:
    """The UTF-8 name of an Info-ZIP Unicode Path extra field (0x7075), if present and current.

    The field holds a version byte, the CRC-32 of the raw header name and the UTF-8 name; it
    is ignored when the CRC does not match (the name was changed by a tool unaware of it).
    """
    extra, pos = info.extra, 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if tag != _UNICODE_PATH_FIELD or len(body) < 5 or body[0] != 1:
            continue
        if struct.unpack_from("<I", body, 1)[0] != zlib.crc32(raw):
            continue
        try:
            return body[5:].decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def zip_raw_name(info: zipfile.ZipInfo) -> bytes | None:
    """The undecoded name of a zip entry without the UTF-8 flag (None when it has the flag)."""
    if info.flag_bits & 0x800:
        return None
    return info.orig_filename.encode("cp437")


def guess_encoding(raw_names: Iterable[bytes]) -> str:
    """The encoding under which all `raw_names` decode and read most plausibly.

    UTF-8 when every name is valid UTF-8 (ASCII included); else the candidate of
    :data:`LEGACY_ENCODINGS` with the lowest implausibility cost, earlier ones winning ties.
    """
    names = [n for n in raw_names if not n.isascii()]
    if not names:
        return "utf-8"
    try:
        for n in names:
            n.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best, best_cost = "cp437", float("inf")
    for enc in LEGACY_ENCODINGS:
        try:
            decoded = [n.decode(enc) for n in names]
        except UnicodeDecodeError:
            continue
        cost = sum(_name_cost(d, enc) for d in decoded)
        if cost < best_cost:
            best, best_cost = enc, cost
    return best


def _script(ch: str) -> str:
    if ch.isascii():
        return "LATIN"
    name = unicodedata.name(ch, "")
    if name.startswith(_CJK_PREFIXES):
        return "CJK"
    return name.split(" ", 1)[0]


def _char_cost(ch: str, enc: str) -> float:
    cat = unicodedata.category(ch)
    if ch.isascii():
        return 0.0 if ch.isprintable() else 4.0
    if cat.startswith(("C", "Z")) or cat in ("So", "Sm", "Sk", "No"):
        return 4.0  # controls, odd spaces, box drawing, symbols, fractions
    if "HALFWIDTH" in unicodedata.name(ch, ""):
        return 1.5  # Shift-JIS reading of two-byte text
    if enc == "gbk" and _script(ch) == "CJK" and not _encodes(ch, "gb2312"):
        return 1.0  # outside GB2312's common characters
    if enc == "cp949" and _script(ch) == "CJK" and not _encodes(ch, "euc_kr"):
        return 1.0
    if cat.startswith(("L", "N", "M")):
        return 0.25  # a little for each: a multi-byte reading has fewer characters
    return 1.0  # punctuation and currency signs inside names are unusual


def _encodes(ch: str, enc: str) -> bool:
    try:
        ch.encode(enc)
    except UnicodeEncodeError:
        return False
    return True


def _name_cost(name: str, enc: str) -> float:
    """Implausibility of a decoded name: odd characters, and scripts mixed inside one part."""
    cost = sum(_char_cost(ch, enc) for ch in name)
    for a, b in itertools.pairwise(name):
        if a.isascii() and b.isascii():
            continue
        if a.islower() and b.isupper():
            cost += 2.0  # "öL": a case change inside a word
        if not a.isascii() and not b.isascii() and _script(a) == _script(b) == "LATIN":
            cost += 0.75  # "êîøêà": runs of accented letters are rare in Latin scripts
    for part in name.replace("\\", "/").split("/"):
        scripts = {_script(ch) for ch in part if ch.isalpha()}
        if len(scripts) > 1:
            cost += 3.0 * (len(scripts) - 1)
    return cost


def decode_names(
    raw: list[bytes | None], given: list[str], encoding: str | None = None
) -> list[str]:
    """NFC names: `given[i]` where `raw[i]` is None (declared UTF-8), else `raw[i]` decoded.

    Undeclared names are decoded with `encoding`, or with the one :func:`guess_encoding` picks
    for all of them together (names of one archive come from one tool and one code page).
    """
    undeclared = [r for r in raw if r is not None]
    enc = encoding or guess_encoding(undeclared)
    out = []
    for r, g in zip(raw, given, strict=True):
        if r is None:
            out.append(nfc(g))
        else:
            out.append(nfc(r.decode(enc, errors="replace")))
    return out
