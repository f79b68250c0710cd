"""The experts design (training/experts.py): bounded output, a voice that reads the same at any
gain, a face that counts only where one is seen, one graph for live and offline use."""
from pathlib import Path

import numpy as np
import pytest
import torch

from models.runtime import AffectSession, AffectStream
from training.checkpoint import load_checkpoint, save_checkpoint
from training.export import export_checkpoint
from training.network import build_network, preset


def speech_like(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """A voiced signal with a moving pitch, formant-like colour and pauses (float32)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / 16000
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = (np.sin(2 * np.pi * 1.3 * t) > -0.3).astype(float)  # syllables and pauses
    signal = 0.02 * voice * envelope + rng.standard_normal(t.size) * 1e-4  # -80 dBFS room
    return signal.astype(np.float32)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A trained-from-nothing tiny experts model, exported (parity checked) to ONNX."""
    torch.manual_seed(0)
    model = build_network(preset("tiny-experts"))
    with torch.no_grad():  # confident enough voice and face for the fusion to matter
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.3)
    folder = tmp_path_factory.mktemp("experts")
    save_checkpoint(folder / "tiny.pt", model.eval(), "tiny-experts")
    report = export_checkpoint(folder / "tiny.pt", folder / "tiny.onnx", steps=120)
    assert max(report.torch_vs_onnx, report.stepped_vs_whole) <= 1e-4
    return folder / "tiny.onnx"


def run_voice_only(session: AffectSession, audio: np.ndarray) -> np.ndarray:
    steps = len(audio) // 640
    windows = audio[:steps * 640].reshape(1, steps, 640)
    face = np.zeros((1, steps, *session.spec.face_shape), np.float32)
    outputs, _ = session.run(windows, face, np.zeros((1, steps), np.float32),
                             session.initial_state())
    return outputs[0]


def test_voice_reading_is_the_same_at_any_gain_from_minus_30_to_plus_20_db(tiny_model):
    session = AffectSession(tiny_model)
    audio = speech_like()
    reference = run_voice_only(session, audio)
    assert np.ptp(reference, axis=0).max() > 0.01  # the reading does move with the voice
    for gain_db in (-30, -20, -10, 10, 20):
        louder = np.clip(audio * 10 ** (gain_db / 20), -1, 1)
        assert np.abs(run_voice_only(session, louder) - reference).max() < 0.01, gain_db


def test_paper_fusion_reads_the_gain(tmp_path):
    """The contrast that makes the test above meaningful: the raw-waveform model does not."""
    torch.manual_seed(0)
    model = build_network(preset("tiny")).eval()
    save_checkpoint(tmp_path / "paper.pt", model, "tiny")
    export_checkpoint(tmp_path / "paper.pt", tmp_path / "paper.onnx", steps=20)
    session = AffectSession(tmp_path / "paper.onnx")
    audio = speech_like()
    change = np.abs(run_voice_only(session, audio * 10) - run_voice_only(session, audio))
    assert change.max() > 0.002


def test_output_stays_within_minus_one_to_one_on_extreme_input(tiny_model):
    session = AffectSession(tiny_model)
    rng = np.random.default_rng(1)
    steps = 200
    audio = np.sign(rng.standard_normal((1, steps, 640))).astype(np.float32)  # full-scale noise
    face = rng.random((1, steps, *session.spec.face_shape), dtype=np.float32)
    mask = (rng.random((1, steps)) > 0.3).astype(np.float32)
    outputs, _ = session.run(audio, face, mask, session.initial_state())
    assert np.all(np.abs(outputs) <= 1.0)


def test_without_a_face_the_output_is_the_voice_reading_and_ignores_the_pixels(tiny_model):
    session = AffectSession(tiny_model)
    audio = speech_like()[None, :50 * 640].reshape(1, 50, 640)
    rng = np.random.default_rng(2)
    mask = np.zeros((1, 50), np.float32)
    faces = [rng.random((1, 50, *session.spec.face_shape), dtype=np.float32) for _ in range(2)]
    first, _ = session.run(audio, faces[0], mask, session.initial_state())
    second, _ = session.run(audio, faces[1], mask, session.initial_state())
    np.testing.assert_array_equal(first, second)
    mask[:, 25:] = 1.0
    with_face, _ = session.run(audio, faces[0], mask, session.initial_state())
    np.testing.assert_array_equal(with_face[:, :25], first[:, :25])
    assert np.abs(with_face[:, 25:] - first[:, 25:]).max() > 1e-3


def test_the_voice_moves_the_output_while_a_face_is_seen(tiny_model):
    """Late fusion: with a face in view, loud speech and silence give different outputs."""
    session = AffectSession(tiny_model)
    rng = np.random.default_rng(3)
    face = np.repeat(rng.random((1, 1, *session.spec.face_shape), dtype=np.float32), 75, axis=1)
    mask = np.ones((1, 75), np.float32)
    speech = speech_like()[:75 * 640].reshape(1, 75, 640)
    heard, _ = session.run(speech, face, mask, session.initial_state())
    silent, _ = session.run(np.zeros_like(speech), face, mask, session.initial_state())
    assert np.abs(heard - silent).mean() > 1e-3


def test_silence_beside_a_face_gives_the_face_reading_whatever_the_voice_expert_says():
    """A muted microphone must not pull the output towards the voice expert's reading of
    nothing; once speech is heard, the voice has its say."""
    torch.manual_seed(1)
    model = build_network(preset("tiny-experts")).eval()
    with torch.no_grad():  # a voice expert that claims the highest confidence it can
        model.voice.precision[-1].bias.fill_(50.0)
    steps = 75
    config = model.config
    face = torch.rand(1, steps, config.face_channels, config.face_size, config.face_size)
    mask = torch.ones(1, steps)
    h, c = model.initial_state(1)
    with torch.no_grad():
        silent = model.experts(torch.zeros(1, steps, 640), face, mask, h, c)
        fused = model.fuse(silent, mask)
        speech = torch.from_numpy(speech_like()[:steps * 640].reshape(1, steps, 640))
        heard = model.fuse(model.experts(speech, face, mask, h, c), mask)
    torch.testing.assert_close(fused, silent["face"], atol=1e-4, rtol=0)
    assert (heard - silent["face"]).abs().mean() > 0.05


def test_live_stream_matches_offline_analysis_with_the_packed_state(tiny_model):
    session = AffectSession(tiny_model)
    audio = speech_like(1.2)
    offline = run_voice_only(session, audio)
    stream = AffectStream(session)
    live = np.array([stream.step(audio[k * 640:(k + 1) * 640], None)
                     for k in range(len(offline))])
    np.testing.assert_allclose(live, offline, atol=1e-5)


def test_face_pathway_warm_start_reproduces_the_source_models_face_reading(tmp_path):
    from training.warm_start import load_face_pathway

    torch.manual_seed(0)
    source = build_network(preset("tiny")).eval()
    save_checkpoint(tmp_path / "source.pt", source, "tiny")
    export_checkpoint(tmp_path / "source.pt", tmp_path / "source.onnx", steps=20)
    experts = build_network(preset("tiny-experts")).eval()
    load_face_pathway(experts.face, tmp_path / "source.onnx")
    rng = np.random.default_rng(4)
    face = rng.random((1, 12, 1, 32, 32), dtype=np.float32)
    mask = np.ones((1, 12), np.float32)
    quiet = (rng.standard_normal((1, 12, 640)) * 1e-3).astype(np.float32)
    session = AffectSession(tmp_path / "source.onnx")
    expected, _ = session.run(quiet, face, mask, session.initial_state())
    h, c = experts.initial_state(1)
    with torch.no_grad():
        readings = experts.experts(torch.from_numpy(quiet), torch.from_numpy(face),
                                   torch.from_numpy(mask), h, c)
    np.testing.assert_allclose(readings["face"].numpy(), np.clip(expected, -1, 1), atol=2e-3)


def test_checkpoint_of_an_experts_model_rebuilds_it(tmp_path):
    torch.manual_seed(0)
    model = build_network(preset("tiny-experts")).eval()
    save_checkpoint(tmp_path / "m.pt", model, "tiny-experts")
    loaded, checkpoint = load_checkpoint(tmp_path / "m.pt")
    assert type(loaded) is type(model) and checkpoint["preset"] == "tiny-experts"
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_the_shipped_recipe_file_reads(tmp_path):
    from training.recipe import RecipeError, read_recipe
    from training.train_experts import Recipe

    root = Path(__file__).resolve().parents[1]
    recipe = read_recipe(root / "training" / "recipes" / "default.toml")
    assert isinstance(recipe, Recipe) and recipe.network_config.fusion == "experts"
    assert recipe.voice.gain_db == (-30.0, 20.0)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\npreset = "experts"\n')
    with pytest.raises(RecipeError, match="has no face"):
        read_recipe(bad)
