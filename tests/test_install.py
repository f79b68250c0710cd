"""What `pip install` put in this environment: one ONNX Runtime, one OpenCV, no torch at runtime."""
import importlib.metadata as metadata
import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


def installed(name: str) -> bool:
    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def test_exactly_one_onnxruntime_distribution():
    found = [name for name in ("onnxruntime", "onnxruntime-gpu") if installed(name)]
    assert len(found) == 1, f"both onnxruntime builds installed: {found}; uninstall one"


def test_exactly_one_opencv_distribution():
    variants = ("opencv-python", "opencv-contrib-python", "opencv-python-headless",
                "opencv-contrib-python-headless")
    found = [name for name in variants if installed(name)]
    assert found == ["opencv-contrib-python"], found


def test_runtime_dependencies_never_pull_torch():
    """Walk the installed dependency tree of the runtime requirements: no torch in it."""
    seen, pending = set(), [requirement_name(r) for r in PYPROJECT["project"]["dependencies"]]
    while pending:
        name = pending.pop()
        if name in seen or not installed(name):
            continue
        seen.add(name)
        for requirement in metadata.requires(name) or []:
            if "extra ==" not in requirement:  # optional extras are not installed by default
                pending.append(requirement_name(requirement))
    assert "mediapipe" in seen and "numpy" in seen
    assert not {"torch", "torchvision", "torchaudio"} & seen


def test_onnxruntime_builds_are_separate_extras():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert [requirement_name(r) for r in extras["cpu"]] == ["onnxruntime"]
    assert [requirement_name(r) for r in extras["gpu"]] == ["onnxruntime-gpu"]
    runtime = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert not runtime & {"onnxruntime", "onnxruntime-gpu", "torch", "opencv-python"}


def test_qt_bindings_keep_reference_counts():
    """PySide6 6.12.0 leaked a reference to None per call and aborted the app on 3.11."""
    import sys

    from PySide6.QtCore import QObject

    holder = QObject()
    before = sys.getrefcount(None)
    for _ in range(1000):
        holder.setObjectName("probe")
    assert before - sys.getrefcount(None) < 10
