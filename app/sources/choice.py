"""Which sources to use, said once for every entry point: the window, ``record``, and the
command-line flags that choose them.

    parser = argparse.ArgumentParser()
    add_source_arguments(parser)          # --camera/--video, --mic/--audio, --fast
    add_model_argument(parser)            # --model
    args = parser.parse_args()
    audio, video = build_sources(choice_from_args(args), pacing_from_args(args))

Rules (``build_sources``): a video file gives its picture and, unless a microphone or an
audio file is chosen, its sound; an audio file or a microphone gives the sound; nothing
chosen for a kind means none of it (the engine then steps on silence, or without faces).
``choice_from_args(..., devices_by_default=True)``: no source flag at all means camera 0
and the default microphone (``record``).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from app.provenance import DEFAULT_MODEL
from app.sources.base import AudioSource, Pacing, VideoSource
from app.sources.camera import CameraSource
from app.sources.files import AudioFileSource, open_file
from app.sources.microphone import MicrophoneSource

DEFAULT_MICROPHONE = "default"  # the system's default input device


@dataclass
class SourceChoice:
    """Where audio and video come from. A video file with sound serves both."""

    camera: int | None = None
    video_file: str | None = None
    microphone: int | str | None = None  # index, name, or DEFAULT_MICROPHONE
    audio_file: str | None = None

    def describe(self) -> tuple[str, str]:
        """(video, audio) in words, for the status bar."""
        if self.video_file:
            video = f"video file {_name(self.video_file)}"
        elif self.camera is not None:
            video = f"camera {self.camera}"
        else:
            video = "no camera"
        if self.audio_file:
            audio = f"audio file {_name(self.audio_file)}"
        elif self.video_file and self.microphone is None:
            audio = f"sound of {_name(self.video_file)}"
        elif self.microphone is not None:
            audio = f"microphone {self.microphone}"
        else:
            audio = "no microphone"
        return video, audio

    @property
    def empty(self) -> bool:
        return (self.camera is None and self.microphone is None and not self.video_file
                and not self.audio_file)


def _name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def build_sources(choice: SourceChoice, pacing: Pacing = Pacing.REALTIME
                  ) -> tuple[AudioSource | None, VideoSource | None]:
    """(audio, video) sources for ``choice``; SourceError/MediaError saying what is wrong."""
    audio = video = None
    if choice.video_file:
        file_audio, video = open_file(choice.video_file, pacing)
        if choice.microphone is None and not choice.audio_file:
            audio = file_audio
    elif choice.camera is not None:
        video = CameraSource(choice.camera)
    if choice.audio_file:
        audio = AudioFileSource(choice.audio_file, pacing)
    elif choice.microphone is not None:
        device = None if choice.microphone == DEFAULT_MICROPHONE else choice.microphone
        audio = MicrophoneSource(device)
    return audio, video


def microphone(text: str) -> int | str:
    """A ``--mic`` value: a device index, or a device name (``default``: the system's)."""
    return int(text) if text.isdigit() else text


def add_source_arguments(parser: argparse.ArgumentParser, fast: bool = True) -> None:
    """``--camera N | --video FILE``, ``--mic N | --audio FILE`` and (``fast``) ``--fast``."""
    picture = parser.add_mutually_exclusive_group()
    picture.add_argument("--camera", type=int, metavar="N", help="camera index")
    picture.add_argument("--video", metavar="FILE",
                         help="a video file (its sound too, unless --mic/--audio)")
    sound = parser.add_mutually_exclusive_group()
    sound.add_argument("--mic", type=microphone, metavar="N",
                       help="microphone index or name ('default': the system's)")
    sound.add_argument("--audio", metavar="FILE", help="an audio file")
    if fast:
        parser.add_argument("--fast", action="store_true",
                            help="read files as fast as the model runs instead of in real time")


def add_model_argument(parser: argparse.ArgumentParser, default: Path | None = DEFAULT_MODEL,
                       help: str | None = None) -> None:
    """``--model FILE.onnx`` (default: the shipped model)."""
    parser.add_argument("--model", type=Path, default=default, metavar="M",
                        help=help or f"exported .onnx model (default: {DEFAULT_MODEL.name})")


def choice_from_args(args: argparse.Namespace, devices_by_default: bool = False) -> SourceChoice:
    """The ``SourceChoice`` of ``add_source_arguments``' flags; ``devices_by_default``:
    without any, camera 0 and the default microphone."""
    choice = SourceChoice(camera=args.camera, video_file=_text(args.video),
                          microphone=args.mic, audio_file=_text(args.audio))
    if choice.empty and devices_by_default:
        return SourceChoice(camera=0, microphone=DEFAULT_MICROPHONE)
    return choice


def pacing_from_args(args: argparse.Namespace) -> Pacing:
    return Pacing.FAST if getattr(args, "fast", False) else Pacing.REALTIME


def _text(path) -> str | None:
    return None if path is None else str(path)


__all__ = ["DEFAULT_MICROPHONE", "SourceChoice", "add_model_argument", "add_source_arguments",
           "build_sources", "choice_from_args", "microphone", "pacing_from_args"]
