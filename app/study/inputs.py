"""What a study is made of: media files, folders, manifest CSVs and recorded sessions.

Each argument of `affect-monitor analyze` is one of:

* a media file (anything FFmpeg reads), analysed as it is;
* a recorded session folder (``session.json`` + ``video.mp4`` and/or ``audio.wav``):
  the video's faces with the WAV's sound, participant and session from session.json;
* any other folder: searched recursively for files with a media extension (a session
  folder met on the way counts as one session, its files are not taken again);
* a ``.csv`` manifest with a header ``media[,participant,session]``: one media file or
  folder per row, relative paths relative to the manifest.

Every input gets an output folder name, unique in the study and the same on every run
with the same arguments (that is what lets a re-run find finished files).
"""
from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.recording import layout

MEDIA_EXTENSIONS = frozenset({
    # video
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".mpg", ".mpeg", ".wmv",
    ".ts", ".mts",
    # audio
    ".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wma",
})


class StudyInputError(ValueError):
    """An argument that cannot be used at all (an unreadable manifest, an empty folder)."""


@dataclass(frozen=True)
class StudyFile:
    """One thing to analyse. Paths are absolute, so cluster workers find them too."""

    name: str  # output folder name under --out, unique in the study
    media: Path  # the file analysed: a video, an audio file, or a session's video.mp4
    audio: Path | None = None  # a session's audio.wav, the sound for ``media``'s faces
    participant: str = ""
    session: str = ""
    problem: str = ""  # known unusable before any analysis (e.g. a session without media)


@dataclass(frozen=True)
class _Found:
    label: str  # what the output name is made from
    media: Path
    audio: Path | None = None
    participant: str = ""
    session: str = ""
    problem: str = ""


def find_study_files(arguments: Iterable[str | Path],
                     extensions: frozenset[str] = MEDIA_EXTENSIONS) -> list[StudyFile]:
    """The study's files in argument order (folders sorted), each with its output name.

    A named file that does not exist is kept: it fails on its own, the rest go on.
    Raises StudyInputError for a manifest that cannot be read or a folder without media.
    """
    found: list[_Found] = []
    for argument in arguments:
        path = Path(os.path.abspath(argument))
        if path.is_dir():
            found += _from_folder(path, extensions)
        elif path.suffix.lower() == ".csv":
            found += _from_manifest(path, extensions)
        else:
            found.append(_Found(path.stem, path))
    return _name(found)


def is_session_folder(folder: Path) -> bool:
    """A folder holding session.json: analysed as a recording, or reported when damaged."""
    return (folder / layout.SESSION_JSON).is_file()


def _session(folder: Path, label: str, participant: str = "", session: str = "") -> _Found:
    try:
        info = layout.read_session_json(folder)
    except (layout.SessionFormatError, OSError) as error:  # one line naming file and field
        return _Found(label, folder, None, participant, session, problem=str(error))
    participant = participant or str(info.get("participant_id") or "")
    session = session or str(info.get("session_id") or "")
    video, audio = folder / layout.VIDEO, folder / layout.AUDIO
    if video.is_file():
        return _Found(label, video, audio if audio.is_file() else None, participant, session)
    if audio.is_file():
        return _Found(label, audio, None, participant, session)
    return _Found(label, folder, None, participant, session,
                  problem=f"{folder}: session recorded without media (no {layout.VIDEO} "
                          f"or {layout.AUDIO}); its live predictions.csv is all there is")


def _from_folder(root: Path, extensions: frozenset[str], participant: str = "",
                 session: str = "") -> list[_Found]:
    if is_session_folder(root):
        return [_session(root, root.name, participant, session)]
    found: list[_Found] = []
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        sessions = [d for d in subfolders if is_session_folder(here / d)]
        for name in sessions:
            relative = (here / name).relative_to(root)
            found.append(_session(here / name, "_".join(relative.parts), participant, session))
        subfolders[:] = [d for d in subfolders if d not in sessions]
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or path.suffix.lower() not in extensions:
                continue
            relative = path.relative_to(root).with_suffix("")
            found.append(_Found("_".join(relative.parts), path, None, participant, session))
    if not found:
        raise StudyInputError(
            f"{root}: no media files in this folder or below (looked for "
            f"{', '.join(sorted(extensions))}); name files, folders or a manifest CSV")
    found.sort(key=lambda f: f.label)
    return found


def _from_manifest(manifest: Path, extensions: frozenset[str]) -> list[_Found]:
    found: list[_Found] = []
    for row in _manifest_rows(manifest):
        found += _manifest_entry(manifest, row, extensions)
    return found


def _manifest_rows(manifest: Path) -> list[dict]:
    """The manifest's rows, as csv.DictReader reads them; a clear error if it is unusable."""
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = [(c or "").strip().lower() for c in reader.fieldnames or ()]
    except FileNotFoundError:
        raise StudyInputError(f"{manifest}: no such manifest file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise StudyInputError(f"{manifest}: cannot read as a CSV manifest ({error})") from None
    if "media" not in columns:
        raise StudyInputError(
            f"{manifest}: a manifest needs a header line with a 'media' column "
            f"(media[,participant,session]); its first line is {columns or 'empty'}")
    return rows


def _manifest_entry(manifest: Path, row: dict, extensions: frozenset[str]) -> list[_Found]:
    """The files one manifest row names: none (blank), one file, or a folder's files."""
    row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
    if not row.get("media"):
        return []  # a blank line
    path = Path(row["media"]).expanduser()
    # Relative paths are relative to the manifest, not to where the command runs.
    path = Path(os.path.abspath(path if path.is_absolute() else manifest.parent / path))
    participant, session = row.get("participant", ""), row.get("session", "")
    if path.is_dir():
        return _from_folder(path, extensions, participant, session)
    return [_Found("_".join(p for p in (participant, session, path.stem) if p),
                   path, None, participant, session)]


def _name(found: list[_Found]) -> list[StudyFile]:
    """Unique output names: the label, made safe, with _2, _3... for repeats."""
    taken: set[str] = set()
    files = []
    for item in found:
        base = _safe(item.label)
        name, n = base, 2
        while name.casefold() in taken:  # casefold: macOS/Windows folders ignore case
            name, n = f"{base}_{n}", n + 1
        taken.add(name.casefold())
        files.append(StudyFile(name, item.media, item.audio, item.participant, item.session,
                               item.problem))
    return files


def _safe(label: str) -> str:
    """A folder name: no separators, no leading dot (dot names are the runner's own)."""
    name = label.replace("/", "_").replace("\\", "_").replace(os.sep, "_").lstrip(".")
    return name.strip() or "unnamed"
