"""How long an MP3 says it is: the frame count of its Xing/Info or VBRI header.

An MP3 is a run of independent frames; a file cut short still decodes, just shorter. Only an
encoder's summary header (LAME and most encoders write Xing/Info, Fraunhofer writes VBRI) in the
first frame states how many frames the whole stream has, so only then can a cut-off file be told
from a short one. Plain CBR files without such a header carry no total: their truncation cannot be
detected, and :func:`declared_samples` returns ``None`` for them.
"""
from __future__ import annotations

from typing import Optional

#: Sample rates by MPEG version bits (index 1 is reserved).
_RATES = {3: (44_100, 48_000, 32_000), 2: (22_050, 24_000, 16_000), 0: (11_025, 12_000, 8_000)}
#: How far we look for the first frame (after any ID3v2 tag), in bytes.
SCAN_BYTES = 64 * 1024


def _id3v2_size(head: bytes) -> int:
    """Bytes taken by a leading ID3v2 tag (0 when none): 10-byte header + syncsafe size (+ footer)."""
    if len(head) < 10 or not head.startswith(b"ID3"):
        return 0
    size = 0
    for byte in head[6:10]:
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def _frame_at(data: bytes, pos: int) -> Optional[tuple[int, int, int, int]]:
    """``(version, layer, sample_rate, channel_mode)`` of a valid frame header at ``pos``, else None."""
    if pos + 4 > len(data):
        return None
    b1, b2, b3 = data[pos + 1], data[pos + 2], data[pos + 3]
    if data[pos] != 0xFF or b1 & 0xE0 != 0xE0:
        return None
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate, rate_idx = b2 >> 4, (b2 >> 2) & 3
    if version == 1 or layer == 0 or bitrate in (0, 15) or rate_idx == 3:
        return None
    return version, layer, _RATES[version][rate_idx], b3 >> 6


def _samples_per_frame(version: int, layer: int) -> int:
    if layer == 3:  # Layer I
        return 384
    if layer == 2:  # Layer II
        return 1152
    return 1152 if version == 3 else 576  # Layer III: MPEG-1 vs MPEG-2/2.5


def declared_samples(read_head) -> Optional[tuple[int, int]]:
    """``(samples per channel, sample rate)`` that the stream's summary header declares, or None.

    ``read_head(offset, size)`` returns up to ``size`` bytes of the file from ``offset`` (so a
    large ID3v2 tag, e.g. with cover art, is skipped without reading it). The count includes the
    encoder's delay and padding (about 1,100 to 2,200 samples for LAME), which decoders drop.
    """
    start = _id3v2_size(read_head(0, 10))
    data = read_head(start, SCAN_BYTES)
    pos = 0
    while True:  # the first frame header (some files have a little junk before it)
        pos = data.find(b"\xFF", pos)
        if pos < 0 or pos + 4 > len(data):
            return None
        frame = _frame_at(data, pos)
        if frame is not None:
            break
        pos += 1
    version, layer, rate, mode = frame
    mono = mode == 3
    if version == 3:
        side = 17 if mono else 32
    else:
        side = 9 if mono else 17
    xing = pos + 4 + side
    tag = data[xing:xing + 4]
    frames = None
    if tag in (b"Xing", b"Info") and len(data) >= xing + 12:
        flags = int.from_bytes(data[xing + 4:xing + 8], "big")
        if flags & 1:
            frames = int.from_bytes(data[xing + 8:xing + 12], "big")
    elif data[pos + 36:pos + 40] == b"VBRI" and len(data) >= pos + 36 + 18:
        frames = int.from_bytes(data[pos + 36 + 14:pos + 36 + 18], "big")
    if not frames:
        return None
    return frames * _samples_per_frame(version, layer), rate
