"""Microphone through sounddevice (PortAudio): 16 kHz mono float32 into the ring.

The PortAudio callback only copies into the preallocated ring and counts overflows
(after friture); everything else happens on the pipeline's thread. sounddevice is
imported when a microphone is opened or listed, so a machine without PortAudio can
still analyse files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from app.sources.base import (BLOCK_SAMPLES, AudioRing, AudioSource, CaptureClock, FaultHandler,
                              SourceError)

PORTAUDIO_MISSING = (
    "the PortAudio library is not installed, so no microphone can be used "
    "(Debian/Ubuntu: sudo apt install libportaudio2; macOS and Windows wheels include it)")


@dataclass(frozen=True)
class AudioDevice:
    index: int
    name: str
    channels: int
    default_rate: float
    is_default: bool


def import_sounddevice():
    """The sounddevice module, or SourceError saying how to get PortAudio."""
    try:
        import sounddevice
    except OSError:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise SourceError(PORTAUDIO_MISSING) from None
    except ImportError:
        raise SourceError("sounddevice is not installed: pip install sounddevice") from None
    return sounddevice


def list_microphones() -> list[AudioDevice]:
    """Input devices; empty on a machine with none. SourceError when PortAudio is missing."""
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        default_input = sd.default.device[0]
    except sd.PortAudioError:
        return []
    return [AudioDevice(index=i, name=d["name"], channels=d["max_input_channels"],
                        default_rate=d["default_samplerate"], is_default=i == default_input)
            for i, d in enumerate(devices) if d["max_input_channels"] > 0]


class MicrophoneSource(AudioSource):
    """One input device, resampled by PortAudio/the OS to 16 kHz mono.

    ``stream_factory`` is the hardware edge: it defaults to ``sounddevice.InputStream``
    and takes the same keyword arguments; tests put a fake device there.
    """

    live = True

    def __init__(self, device: int | str | None = None,
                 stream_factory: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self.device = device
        self.name = f"microphone {device}" if device is not None else "microphone"
        self._stream_factory = stream_factory
        self._stream = None
        self._ring: AudioRing | None = None
        self._clock: CaptureClock | None = None
        self._anchored = False
        self._errors: tuple[type[BaseException], ...] = (OSError, RuntimeError)

    def start(self, ring: AudioRing, clock: CaptureClock, on_fault: FaultHandler) -> None:
        self._on_fault = on_fault
        self._ring, self._clock = ring, clock
        factory = self._stream_factory
        if factory is None:
            sd = import_sounddevice()
            factory, errors = sd.InputStream, (sd.PortAudioError, ValueError)
        else:
            errors = (OSError, ValueError, RuntimeError)
        self._errors = errors
        try:
            self._stream = factory(samplerate=self.sample_rate, channels=1, dtype="float32",
                                   blocksize=BLOCK_SAMPLES, device=self.device,
                                   callback=self._callback, finished_callback=self._finished)
            self._stream.start()
        except errors as error:
            self.ended = True
            raise SourceError(f"cannot open the {self.name}: {error}") from None

    def _callback(self, indata, frames, time_info, status) -> None:
        # Runs on PortAudio's thread: copy and count, nothing else.
        if not self._anchored:
            # Sample 0 was captured one block before this first callback.
            self.offset_s = self._clock.now() - frames / self.sample_rate
            self._anchored = True
        if status.input_overflow:
            self._ring.device_overflows += 1
        self._ring.write(indata[:, 0])

    def _finished(self) -> None:
        self.ended = True
        if not self._stop.is_set():
            self.fault("the microphone stream stopped (device unplugged or taken over?)")

    def stop(self) -> None:
        self._stop.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except self._errors as error:
                self.fault(f"closing the microphone failed: {error}")
