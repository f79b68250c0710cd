"""Where audio samples and video frames come from: devices, files, or silence.

Every source writes into the buffers of ``app.sources.base`` on the capture clock;
the pipeline does not know which kind it is fed by.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.sources.base import (AudioRing, AudioSource, CaptureClock, Frame, FrameBuffer, Pacing,
                              SourceError, VideoSource)
from app.sources.camera import CameraDevice, CameraSource, list_cameras
from app.sources.files import AudioFileSource, VideoFileSource, open_file
from app.sources.microphone import AudioDevice, MicrophoneSource, list_microphones
from app.sources.silence import SilenceSource


@dataclass(frozen=True)
class DeviceList:
    microphones: tuple[AudioDevice, ...]
    cameras: tuple[CameraDevice, ...]
    problems: tuple[str, ...]  # why a kind of device could not be listed


def list_devices() -> DeviceList:
    """Microphones and cameras present; empty lists and a reason instead of a crash."""
    problems = []
    try:
        microphones = tuple(list_microphones())
    except SourceError as error:
        microphones = ()
        problems.append(str(error))
    return DeviceList(microphones, tuple(list_cameras()), tuple(problems))


__all__ = ["AudioDevice", "AudioFileSource", "AudioRing", "AudioSource", "CameraDevice",
           "CameraSource", "DeviceList", "Frame", "FrameBuffer", "MicrophoneSource", "Pacing",
           "CaptureClock", "SilenceSource", "SourceError", "VideoFileSource", "VideoSource",
           "list_cameras", "list_devices", "list_microphones", "open_file"]
