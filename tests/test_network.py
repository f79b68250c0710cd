from dataclasses import replace

import numpy as np
import pytest
import torch

from training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from training.losses import ccc_loss
from training.network import (PRESETS, AffectNet, AudioCNN, NetworkConfig, ResNet,
                              conv_same_by_fft, fast_fft_size, pad_same, preset,
                              with_audio_branch, with_fresh_face_input)


def test_audio_branch_is_the_papers_shape():
    branch = AudioCNN(40, 0.5)
    assert branch.conv1.kernel_size == (20,) and branch.conv1.out_channels == 40
    assert branch.conv2.kernel_size == (40,) and branch.conv2.out_channels == 40
    assert branch.eval()(torch.randn(3, 640)).shape == (3, 1280)


def test_time_pooled_audio_features_move_far_less_than_the_papers_when_speech_shifts_1_ms():
    # The paper's pooling ties each feature to a sample position inside the 40 ms window,
    # so a 1 ms shift of the same sound changes it; pooling each filter over time does not.
    torch.manual_seed(0)
    time_pooled = AudioCNN(40, 0.0, gain=30.0, pooling="time").eval()
    paper = AudioCNN(40, 0.0, gain=30.0).eval()
    paper.load_state_dict(time_pooled.state_dict())
    t = torch.arange(640 + 16) / 16000
    tone = 0.03 * (torch.sin(2 * torch.pi * 180 * t) + 0.5 * torch.sin(2 * torch.pi * 900 * t))
    window, shifted = tone[:640][None], tone[16:][None]
    assert time_pooled(window).shape == (1, 80)

    def relative_change(branch):
        with torch.no_grad():
            a, b = branch(window), branch(shifted)
        return float((a - b).norm() / a.norm())

    # measured 0.12 (time) vs 0.41 (paper); what still moves is the window's edges
    assert relative_change(time_pooled) < 0.2
    assert relative_change(paper) > 2.5 * relative_change(time_pooled)


def test_switching_audio_pooling_keeps_every_weight_but_the_audio_lstm_columns():
    torch.manual_seed(0)
    paper = AffectNet(preset("tiny"))
    switched = with_audio_branch(paper, "time")
    assert switched.config.audio_pooling == "time" and switched.audio.out_features == 20
    old, new = paper.state_dict(), switched.state_dict()
    assert all(torch.equal(old[name], new[name]) for name in old if name != "lstm.weight_ih_l0")
    # visual features and the face mask feed the same LSTM weights as before
    assert torch.equal(old["lstm.weight_ih_l0"][:, 320:], new["lstm.weight_ih_l0"][:, 20:])
    assert with_audio_branch(switched, "time") is switched


def test_switching_audio_kernel_starts_the_first_audio_conv_fresh():
    torch.manual_seed(0)
    paper = AffectNet(preset("tiny"))
    switched = with_audio_branch(paper, "time", kernel=160)
    assert switched.audio.conv1.weight.shape[-1] == 160
    h, c = switched.initial_state(1)
    assert switched(torch.randn(1, 3, 640), torch.zeros(1, 3, 1, 32, 32), torch.zeros(1, 3),
                    h, c)[0].shape == (1, 3, 2)
    old, new = paper.state_dict(), switched.state_dict()
    fresh = {"audio.conv1.weight", "audio.conv1.bias", "lstm.weight_ih_l0"}
    assert all(torch.equal(old[name], new[name]) for name in old if name not in fresh)
    assert torch.equal(old["lstm.weight_ih_l0"][:, 320:], new["lstm.weight_ih_l0"][:, 20:])


def test_checkpoints_from_before_the_kernel_option_keep_the_papers_kernel():
    values = preset("tiny").to_dict()
    del values["audio_kernel"]
    assert AffectNet(NetworkConfig.from_dict(values)).audio.conv1.weight.shape[-1] == 20


def test_unknown_audio_pooling_is_named():
    with pytest.raises(ValueError, match="audio_pooling must be 'filters' or 'time'"):
        AudioCNN(40, pooling="frequency")


def test_audio_dropout_only_in_training():
    branch = AudioCNN(40, 0.5)
    window = torch.randn(2, 640)
    branch.eval()
    assert torch.equal(branch(window), branch(window))
    branch.train()
    assert not torch.equal(branch(window), branch(window))


def test_bfloat16_training_is_close_to_float32_and_leaves_evaluation_exact():
    torch.manual_seed(0)
    branch = AudioCNN(40, 0.0, gain=30.0, pooling="time")
    speech = torch.randn(16, 640) * 0.02
    branch.train()
    exact = branch(speech)
    branch.train_in_bfloat16 = True
    reduced = branch(speech)
    # reduced precision while training: not the same numbers, but the same features
    assert reduced.dtype == torch.float32 and not torch.equal(reduced, exact)
    assert torch.allclose(reduced, exact, rtol=0.05, atol=0.02)
    reduced.sum().backward()
    assert branch.conv2.weight.grad.dtype == torch.float32
    assert branch.conv2.weight.dtype == torch.float32  # the stored weights stay float32
    # evaluation and export never see bfloat16
    branch.eval()
    with torch.no_grad():
        evaluated = branch(speech)
        branch.train_in_bfloat16 = False
        assert torch.equal(evaluated, branch(speech))


@pytest.mark.parametrize("kernel", [20, 40, 400])
def test_fft_convolution_computes_the_direct_convolution(kernel):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(40, 40, kernel)
    speech = torch.randn(8, 40, 320, requires_grad=True)
    direct = conv(pad_same(speech, kernel))
    (direct_gradient,) = torch.autograd.grad(direct.square().sum(), conv.weight)
    by_fft = conv_same_by_fft(speech, conv)
    (fft_gradient,) = torch.autograd.grad(by_fft.square().sum(), conv.weight)
    assert by_fft.shape == direct.shape == (8, 40, 320)
    assert (by_fft - direct).abs().max() < 1e-5 * direct.abs().max()
    assert (fft_gradient - direct_gradient).abs().max() < 1e-5 * direct_gradient.abs().max()


def test_fft_sizes_are_the_smallest_with_small_prime_factors():
    # 359, the second convolution's padded length, is prime: its FFT is the slow kind
    assert [fast_fft_size(n) for n in (1, 7, 359, 360, 659)] == [1, 8, 360, 360, 675]


def test_fft_training_matches_direct_and_leaves_evaluation_exact():
    torch.manual_seed(0)
    branch = AudioCNN(40, 0.0, gain=30.0, pooling="time").train()
    speech = torch.randn(16, 640) * 0.02
    exact = branch(speech)
    branch.train_by_fft = True
    by_fft = branch(speech)
    assert not torch.equal(by_fft, exact)  # computed another way: rounding differs
    assert torch.allclose(by_fft, exact, rtol=1e-4, atol=1e-5)
    branch.eval()  # evaluation and export run the direct convolution
    with torch.no_grad():
        evaluated = branch(speech)
        branch.train_by_fft = False
        assert torch.equal(evaluated, branch(speech))


def test_audio_gain_scales_the_raw_window_in_the_deployed_path():
    torch.manual_seed(0)
    amplified = AudioCNN(filters=40, gain=30.0).eval()
    plain = AudioCNN(filters=40, gain=1.0).eval()
    plain.load_state_dict(amplified.state_dict())
    speech = torch.randn(3, 640) * 0.01  # quiet speech, RMS 0.01
    assert torch.allclose(amplified(speech), plain(speech * 30.0), atol=1e-6)
    assert not torch.allclose(amplified(speech), plain(speech), atol=1e-3)
    assert preset("small").audio_gain == 30.0 and preset("paper").audio_gain == 1.0


def test_checkpoints_from_before_the_audio_gain_load_at_gain_one(tmp_path):
    model = AffectNet(preset("tiny"))
    save_checkpoint(tmp_path / "old.pt", model, "tiny")
    checkpoint = torch.load(tmp_path / "old.pt", weights_only=True)
    del checkpoint["config"]["audio_gain"]
    torch.save(checkpoint, tmp_path / "old.pt")
    loaded, _ = load_checkpoint(tmp_path / "old.pt")
    assert loaded.audio.gain == 1.0


def test_checkpoints_from_before_audio_pooling_keep_the_papers_pooling(tmp_path):
    save_checkpoint(tmp_path / "old.pt", AffectNet(preset("tiny")), "tiny")
    checkpoint = torch.load(tmp_path / "old.pt", weights_only=True)
    del checkpoint["config"]["audio_pooling"]
    torch.save(checkpoint, tmp_path / "old.pt")
    loaded, _ = load_checkpoint(tmp_path / "old.pt")
    assert loaded.audio.pooling == "filters" and loaded.audio.out_features == 320


def test_category_head_is_training_only_and_old_checkpoints_load_without_it(tmp_path):
    config = preset("tiny")
    model = AffectNet(config).eval()
    audio, face = make_inputs(config, batch=2, steps=3)
    inputs = (audio, face, torch.ones(2, 3), *model.initial_state(2))
    plain = model(*inputs)
    av, h, c, logits = model(*inputs, with_categories=True)
    assert len(plain) == 3 and logits.shape == (2, 3, config.category_classes)
    torch.testing.assert_close(plain[0], av)  # the head does not change arousal/valence
    save_checkpoint(tmp_path / "old.pt", model, "tiny")
    checkpoint = torch.load(tmp_path / "old.pt", weights_only=True)
    del checkpoint["config"]["category_classes"]  # a checkpoint from before the head
    checkpoint["model"] = {k: v for k, v in checkpoint["model"].items()
                           if not k.startswith("category_head.")}
    torch.save(checkpoint, tmp_path / "old.pt")
    loaded, _ = load_checkpoint(tmp_path / "old.pt")
    assert loaded.category_head is None
    with pytest.raises(ValueError, match="no category head"):
        loaded(*inputs, with_categories=True)


def test_paper_preset_is_resnet50_on_96px_rgb():
    config = PRESETS["paper"]
    assert (config.resnet_block, config.resnet_layers) == ("bottleneck", (3, 4, 6, 3))
    assert (config.face_size, config.face_channels) == (96, 3)
    assert (config.lstm_layers, config.lstm_hidden) == (2, 256)
    resnet = ResNet("bottleneck", (3, 4, 6, 3), 64, 3).eval()
    # ResNet-50 without its classifier has 23.5 M parameters.
    assert sum(p.numel() for p in resnet.parameters()) == pytest.approx(23.5e6, rel=0.01)
    assert resnet(torch.rand(1, 3, 96, 96)).shape == (1, 2048)


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="choose one of"):
        preset("huge")


def make_inputs(config, batch=2, steps=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, steps, 640, generator=generator) * 0.1
    face = torch.rand(batch, steps, config.face_channels, config.face_size, config.face_size,
                      generator=generator)
    return audio, face


def test_face_is_ignored_where_mask_is_zero():
    model = AffectNet(preset("tiny")).eval()
    audio, face = make_inputs(model.config)
    mask = torch.tensor([[1, 0, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=torch.float32)
    h, c = model.initial_state(2)
    other_face = face.clone()
    other_face[mask == 0] = torch.rand_like(other_face[mask == 0])  # change only masked faces
    with torch.no_grad():
        first = model(audio, face, mask, h, c)[0]
        second = model(audio, other_face, mask, h, c)[0]
        unmasked_change = face.clone()
        unmasked_change[0, 0] = 1 - unmasked_change[0, 0]
        third = model(audio, unmasked_change, mask, h, c)[0]
    assert torch.equal(first, second)
    assert not torch.allclose(first[0], third[0])  # a visible face does change the output


def test_fresh_face_input_changes_only_what_a_visible_face_does():
    torch.manual_seed(3)
    model = AffectNet(preset("tiny")).eval()
    fresh = with_fresh_face_input(model, seed=0)
    audio, face = make_inputs(model.config)
    h, c = model.initial_state(2)
    no_face, with_face = torch.zeros(2, 5), torch.ones(2, 5)
    with torch.no_grad():
        np.testing.assert_array_equal(model(audio, face, no_face, h, c)[0],
                                      fresh(audio, face, no_face, h, c)[0])  # voice reading kept
        assert not torch.allclose(model(audio, face, with_face, h, c)[0],
                                  fresh(audio, face, with_face, h, c)[0])
    changed = {name for name, value in fresh.state_dict().items()
               if not torch.equal(value, model.state_dict()[name])}
    assert changed == {"lstm.weight_ih_l0"}
    start = model.audio.out_features
    stop = start + model.visual.out_features
    old, new = model.lstm.weight_ih_l0, fresh.lstm.weight_ih_l0
    assert torch.equal(old[:, :start], new[:, :start]) and torch.equal(old[:, stop:], new[:, stop:])
    # the same seed gives the same weights, and the global random stream is left alone
    state = torch.random.get_rng_state()
    assert torch.equal(with_fresh_face_input(model, seed=0).lstm.weight_ih_l0, new)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_descriptor_dropout_zeroes_whole_sequences_in_training_only():
    torch.manual_seed(0)
    model = AffectNet(replace(preset("tiny"), audio_descriptors=True))
    model.descriptor_dropout = 0.5
    audio, face = make_inputs(model.config, batch=16)
    no_face = torch.zeros(16, 5)
    learned = model.audio.out_features - model.audio.descriptors.out_features
    with torch.no_grad():
        clean = model.eval().features(audio, face, no_face)[:, :, learned:model.audio.out_features]
        trained = model.train().features(audio, face, no_face)[:, :, learned:model.audio.out_features]
    dropped = [bool((trained[i] == 0).all()) for i in range(16)]
    assert 3 <= sum(dropped) <= 13  # about half the sequences, each for all of its steps
    for i in range(16):
        assert dropped[i] or torch.equal(trained[i], clean[i])
    assert bool(clean.abs().sum(dim=(1, 2)).gt(0).all())  # evaluation always feeds them


def test_tiny_model_overfits_target_that_needs_both_branches():
    """Target = audio loudness (arousal) and face brightness (valence): loss must fall >= 90%."""
    torch.manual_seed(0)
    model = AffectNet(preset("tiny"))
    model.train()
    config = model.config
    steps, batch = 16, 4
    rng = torch.Generator().manual_seed(1)
    loudness = torch.rand(batch, steps, 1, generator=rng)
    brightness = torch.rand(batch, steps, 1, generator=rng)
    audio = torch.randn(batch, steps, 640, generator=rng) * loudness
    face = brightness[..., None, None].expand(batch, steps, config.face_channels,
                                              config.face_size, config.face_size).contiguous()
    target = torch.cat([loudness, brightness], dim=-1) * 2 - 1
    mask = torch.ones(batch, steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        prediction = model(audio, face, mask, *model.initial_state(batch))[0]
        loss = ccc_loss(prediction, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] <= 0.1 * losses[0], (losses[0], losses[-1])
    assert model.audio.conv1.weight.grad.abs().sum() > 0
    assert model.visual.stem[0].weight.grad.abs().sum() > 0


def test_checkpoint_rebuilds_model_alone(tmp_path):
    model = AffectNet(preset("tiny")).eval()
    save_checkpoint(tmp_path / "m.pt", model, "tiny", step=7)
    loaded, checkpoint = load_checkpoint(tmp_path / "m.pt")
    assert loaded.config == model.config and checkpoint["step"] == 7
    audio, face = make_inputs(model.config, batch=1)
    mask, state = torch.ones(1, 5), model.initial_state(1)
    with torch.no_grad():
        assert torch.equal(model(audio, face, mask, *state)[0], loaded(audio, face, mask, *state)[0])


def test_bad_checkpoint_is_named(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
