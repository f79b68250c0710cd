"""app.sources.choice: one rule for which sources a choice opens, and the flags that make
a choice, shared by the window and ``affect-monitor record``."""
from __future__ import annotations

import argparse

import pytest

from app.sources import AudioFileSource, CameraSource, MicrophoneSource, VideoFileSource
from app.sources.base import Pacing
from app.sources.choice import (DEFAULT_MICROPHONE, SourceChoice, add_model_argument,
                                add_source_arguments, build_sources, choice_from_args,
                                pacing_from_args)


def parser():
    p = argparse.ArgumentParser(prog="test")
    add_source_arguments(p)
    add_model_argument(p)
    return p


def test_a_video_file_serves_both_unless_a_microphone_or_audio_file_is_chosen(cremad_dir):
    clip = str(cremad_dir / "1001_DFA_ANG_XX.flv")
    audio, video = build_sources(SourceChoice(video_file=clip))
    assert isinstance(audio, AudioFileSource) and isinstance(video, VideoFileSource)
    audio, video = build_sources(SourceChoice(video_file=clip, microphone=2))
    assert isinstance(audio, MicrophoneSource) and audio.name == "microphone 2"
    audio, _ = build_sources(SourceChoice(video_file=clip, audio_file=clip))
    assert isinstance(audio, AudioFileSource)
    audio, video = build_sources(SourceChoice(camera=1, microphone=DEFAULT_MICROPHONE))
    assert isinstance(video, CameraSource) and video.name == "camera 1"
    assert audio.name == "microphone"  # the system's default input
    assert build_sources(SourceChoice()) == (None, None)  # silence, no faces


def test_flags_make_the_same_choice_the_window_stores(cremad_dir):
    clip = str(cremad_dir / "1001_DFA_ANG_XX.flv")
    args = parser().parse_args(["--video", clip, "--mic", "3", "--fast"])
    assert choice_from_args(args) == SourceChoice(video_file=clip, microphone=3)
    assert pacing_from_args(args) is Pacing.FAST
    args = parser().parse_args(["--mic", "USB Audio"])
    assert choice_from_args(args).microphone == "USB Audio"
    assert pacing_from_args(args) is Pacing.REALTIME
    nothing = parser().parse_args([])
    assert choice_from_args(nothing).empty
    assert choice_from_args(nothing, devices_by_default=True) == SourceChoice(
        camera=0, microphone=DEFAULT_MICROPHONE)
    assert nothing.model.name == "default.onnx"


def test_one_picture_and_one_sound_at_most(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--camera", "0", "--video", "x.mp4"])
    with pytest.raises(SystemExit):
        parser().parse_args(["--mic", "0", "--audio", "x.wav"])
    assert "not allowed with argument" in capsys.readouterr().err
