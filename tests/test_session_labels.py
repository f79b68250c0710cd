"""Participant and session ids become BIDS labels (letters and digits) before they touch
a path: the GUI's Record dialog cannot put a session outside "Save under", and
`affect-monitor record` refuses such ids with a message."""
from __future__ import annotations

import pytest

from app.cli import main as cli_main
from app.recording.layout import safe_label


@pytest.mark.parametrize("text, label", [("P01", "P01"), ("x/../../../escaped", "xescaped"),
                                         ("..", ""), ("a\\b:c\x00d", "abcd"), ("sub-01", "sub01"),
                                         ("Ünïcode 7", "ncode7"), (None, "")])
def test_safe_label_keeps_letters_and_digits(text, label):
    assert safe_label(text) == label


def test_the_record_dialog_keeps_the_session_under_its_folder(qtbot, tmp_path):
    from app.gui.recording import RecordDialog

    base = tmp_path / "sessions"
    dialog = RecordDialog(base_dir=base)
    qtbot.addWidget(dialog)
    dialog.participant.setText("x/../../../escaped")  # pasted or set: not typed
    dialog.session.setText("../1")
    out = dialog.out_dir()
    assert out.parent == base and out.name == "sub-xescaped_ses-1"
    assert out.resolve().is_relative_to(base.resolve())
    assert dialog.metadata()["participant_id"] == "xescaped"

    dialog.participant.clear()
    qtbot.keyClicks(dialog.participant, "P/0.1")  # typing: the field takes no separators
    assert dialog.participant.text() == "P01"
    dialog.participant.setText("..")
    dialog.session.setText("/")
    out = dialog.out_dir()  # nothing left of either id: a new folder all the same
    assert out.parent == base and out.name.startswith("ses-") and out.name[4:].isalnum()


@pytest.mark.parametrize("flag", ["--participant", "--session"])
def test_record_refuses_an_id_that_is_not_a_label(flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli_main(["record", "--out", str(tmp_path / "s"), "--no-media", flag, "../../x"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "is not a label: use letters and digits only" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()
