"""training.probes.fusion_probe: the weights a fused output gives the face and the voice readings."""
import numpy as np

from training.probes.fusion_probe import main, probe, reading_weights


def test_reading_weights_recover_a_known_mix():
    rng = np.random.default_rng(0)
    face, voice = rng.standard_normal((500, 2)), rng.standard_normal((500, 2))
    fused = np.column_stack([0.7 * face[:, 0] + 0.3 * voice[:, 0] + 0.1, face[:, 1]])
    weights = reading_weights(fused, face, voice)
    np.testing.assert_allclose(weights[0], [0.7, 0.3, 0.1], atol=1e-9)
    np.testing.assert_allclose(weights[1], [1.0, 0.0, 0.0], atol=1e-9)


def test_probe_runs_a_real_model_on_disagreeing_sequences(tiny_model_path, tiny_corpora, capsys):
    result = probe(tiny_model_path, tiny_corpora, count=2)
    for row in result.values():
        assert np.isfinite([row["face_weight"], row["voice_weight"], row["ccc_fused"]]).all()
    assert main(["--model", str(tiny_model_path), "--data", str(tiny_corpora),
                 "--sequences", "2"]) == 0
    assert "x face +" in capsys.readouterr().out


def test_probe_names_missing_data(tiny_model_path, tmp_path, capsys):
    assert main(["--model", str(tiny_model_path), "--data", str(tmp_path)]) == 1
    assert "fusion_probe:" in capsys.readouterr().err
