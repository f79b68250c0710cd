"""audio.wav written so that a crash needs no repair: 16-bit PCM whose header always
states what is safely on disk.

Each ``flush`` first hands the new samples to the OS, then rewrites the two size fields
of the RIFF header. A process killed at any moment leaves a file every reader opens,
holding everything up to the last flush (a second at most); samples written after it
sit past the data chunk, where readers ignore them, until ``repair_wav`` counts them in.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

HEADER_BYTES = 44
_RIFF_SIZE_AT, _DATA_SIZE_AT = 4, 40
_MAX_DATA = 0xFFFFFFFF - 36  # RIFF's 32-bit sizes: ~37 h of 16 kHz mono 16-bit


def _header(rate: int, channels: int, data_bytes: int) -> bytes:
    block = 2 * channels
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, 16)
            + b"data" + struct.pack("<I", data_bytes))


def to_pcm16(samples: np.ndarray) -> bytes:
    """float -1..1 -> little-endian int16 (clipped, rounded)."""
    scaled = np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767.0
    return np.rint(scaled).astype("<i2").tobytes()


class WavWriter:
    def __init__(self, path: str | Path, rate: int, channels: int = 1) -> None:
        self.path = Path(path)
        self.rate, self.channels = rate, channels
        self._file = open(self.path, "wb")
        self._file.write(_header(rate, channels, 0))
        self._file.flush()
        self.data_bytes = 0  # written to the file object
        self.declared_bytes = 0  # stated in the header

    @property
    def frames(self) -> int:
        return self.data_bytes // (2 * self.channels)

    def write(self, samples: np.ndarray) -> None:
        data = to_pcm16(samples)
        if self.data_bytes + len(data) > _MAX_DATA:
            raise OSError(f"{self.path}: a WAV file cannot hold more than 4 GiB")
        self._file.write(data)
        self.data_bytes += len(data)

    def flush(self, sync: bool = False) -> None:
        """Samples to the OS first, then a header that counts them."""
        self._file.flush()
        if self.declared_bytes != self.data_bytes:
            self._file.seek(_RIFF_SIZE_AT)
            self._file.write(struct.pack("<I", 36 + self.data_bytes))
            self._file.seek(_DATA_SIZE_AT)
            self._file.write(struct.pack("<I", self.data_bytes))
            self._file.seek(0, os.SEEK_END)
            self._file.flush()
            self.declared_bytes = self.data_bytes
        if sync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self.flush(sync=True)
        finally:
            self._file.close()


def repair_wav(path: str | Path) -> str | None:
    """Make the header count every whole sample in the file. Returns what was fixed."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        header = handle.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES or header[:4] != b"RIFF" or header[36:40] != b"data":
            raise ValueError(f"{path}: not a WAV file written by the recorder")
        channels, = struct.unpack("<H", header[22:24])
        declared, = struct.unpack("<I", header[40:44])
        block = 2 * channels
        actual = min((size - HEADER_BYTES) // block * block, _MAX_DATA)
        torn = size - HEADER_BYTES - actual
        if declared == actual and torn == 0:
            return None
        handle.seek(_RIFF_SIZE_AT)
        handle.write(struct.pack("<I", 36 + actual))
        handle.seek(_DATA_SIZE_AT)
        handle.write(struct.pack("<I", actual))
        handle.truncate(HEADER_BYTES + actual)
    rate, = struct.unpack("<I", header[24:28])
    added = (actual - declared) / block / rate
    fixed = f"{path.name}: header now counts {actual // block / rate:.2f} s"
    if added > 0:
        fixed += f" ({added:.2f} s written after the last header update recovered)"
    if torn:
        fixed += f"; {torn} byte(s) of a torn sample dropped"
    return fixed
