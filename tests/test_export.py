from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from models.runtime import AffectSession
from models.spec import SPEC_METADATA_KEY
from training.checkpoint import save_checkpoint
from training.export import check_parity, export_checkpoint, main
from training.network import AffectNet, preset


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.manual_seed(3)
    save_checkpoint(path, AffectNet(preset("tiny")).eval(), "tiny",
                    card={"training_data": ["unit test"], "licence": "MIT"})
    return path


def test_export_passes_parity_over_500_steps(tiny_checkpoint, tmp_path, capsys):
    output = tmp_path / "model.onnx"
    assert main([str(tiny_checkpoint), "-o", str(output), "--steps", "500"]) == 0
    printed = capsys.readouterr().out
    assert "parity over 500 steps" in printed
    graph = onnx.load(str(output))
    onnx.checker.check_model(graph)
    keys = {entry.key for entry in graph.metadata_props}
    assert SPEC_METADATA_KEY in keys
    session = AffectSession(output)
    assert session.spec.preset == "tiny" and session.spec.training_data == ("unit test",)
    assert session.spec.face.size == 32 and session.spec.state_shape == (2, 32)
    # the spec carries the network's own architecture, not just its preset's name
    assert session.spec.network == {**preset("tiny").to_dict(),
                                    "resnet_layers": list(preset("tiny").resnet_layers)}


def test_onnx_matches_torch_and_stepping_matches_whole(tiny_checkpoint, tmp_path):
    output = tmp_path / "model.onnx"
    export_checkpoint(tiny_checkpoint, output, steps=20)
    model = AffectNet(preset("tiny"))
    model.load_state_dict(torch.load(tiny_checkpoint, weights_only=True)["model"])
    report = check_parity(model.eval(), output, steps=200)
    assert report.torch_vs_onnx <= 1e-4 and report.stepped_vs_whole <= 1e-4


def test_time_pooled_audio_exports_with_parity(tmp_path):
    torch.manual_seed(4)
    config = replace(preset("tiny"), audio_pooling="time")
    save_checkpoint(tmp_path / "time.pt", AffectNet(config).eval(), "tiny")
    export_checkpoint(tmp_path / "time.pt", tmp_path / "time.onnx", steps=50)
    session = AffectSession(tmp_path / "time.onnx")
    assert session.spec.network["audio_pooling"] == "time"


def test_audio_descriptors_export_with_parity(tmp_path):
    torch.manual_seed(5)
    config = replace(preset("tiny"), audio_pooling="time", audio_descriptors=True)
    model = AffectNet(config).eval()
    save_checkpoint(tmp_path / "descriptors.pt", model, "tiny")
    export_checkpoint(tmp_path / "descriptors.pt", tmp_path / "descriptors.onnx", steps=50)
    assert AffectSession(tmp_path / "descriptors.onnx").spec.network["audio_descriptors"] is True
    report = check_parity(model, tmp_path / "descriptors.onnx", steps=100)
    assert report.torch_vs_onnx <= 1e-4 and report.stepped_vs_whole <= 1e-4


def test_state_is_carried_between_steps(tiny_model_path):
    """Stepping without carrying h/c must differ from the whole sequence: state matters."""
    session = AffectSession(tiny_model_path)
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((1, 30, 640)).astype(np.float32) * 0.1
    face = rng.random((1, 30, 1, 32, 32), dtype=np.float32)
    mask = np.ones((1, 30), np.float32)
    whole, _ = session.run(audio, face, mask, session.initial_state())
    fresh = np.concatenate([session.run(audio[:, t:t + 1], face[:, t:t + 1], mask[:, t:t + 1],
                                        session.initial_state())[0] for t in range(30)], axis=1)
    assert np.abs(whole - fresh).max() > 1e-3


def test_failed_parity_writes_nothing_and_says_why(tiny_checkpoint, tmp_path, capsys):
    output = tmp_path / "model.onnx"
    # A tolerance no float computation meets forces the failure path.
    assert main([str(tiny_checkpoint), "-o", str(output), "--steps", "5",
                 "--tolerance", "-1"]) == 1
    assert "parity check failed" in capsys.readouterr().err
    assert not output.exists() and not list(tmp_path.glob("*.partial"))


def test_missing_checkpoint_is_a_message_not_a_traceback(tmp_path, capsys):
    assert main([str(tmp_path / "nope.pt"), "-o", str(tmp_path / "m.onnx")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


def test_parity_measures_outputs_and_h_absolutely_and_c_relative_to_its_size():
    from training.export import max_difference

    output, h, c = np.zeros((1, 5, 2)), np.zeros((2, 1, 4)), np.full((2, 1, 4), 500.0)
    # float32 rounding of a cell state of 500 is not a parity failure ...
    assert max_difference([output, h, c + 1e-3], [output, h, c]) == pytest.approx(2e-6)
    # ... but the same absolute error on the outputs or h is
    assert max_difference([output + 1e-3, h, c], [output, h, c]) == pytest.approx(1e-3)
    assert max_difference([output, h + 1e-3, c], [output, h, c]) == pytest.approx(1e-3)
    small_c = np.full((2, 1, 4), 0.5)
    assert max_difference([output, h, small_c + 1e-3], [output, h, small_c]) == pytest.approx(1e-3)
