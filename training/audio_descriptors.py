"""Fixed acoustic descriptors of each 40 ms window, beside the learned audio CNN.

Per window: 40 log-mel bands relative to their mean (spectral shape, independent of the
level), the log energy, log F0 at the highest normalised autocorrelation peak in 60-400 Hz,
and that peak's height (voicing). No trained weights: every step is a fixed matrix
product, so the exported graph and the live app need nothing beyond ONNX Runtime.

Why: a linear read-out of RAVDESS valence on held-out actors found 0.35 CCC in these
descriptors against 0.22 in the learned audio features (training/voice_probe.py); pitch
in particular generalises across speakers, and a 20-tap first conv cannot resolve it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from models.spec import SAMPLE_RATE, WINDOW_SAMPLES

MEL_BANDS = 40
PITCH_RANGE_HZ = (60.0, 400.0)
DESCRIPTORS = MEL_BANDS + 3  # shape bands, log energy, log F0, voicing
# Fixed scales that bring each descriptor near unit range on speech (RAVDESS, 16 kHz):
# band shapes span about +-8 (natural log); window energy about e^-23 (the silence around
# the speech) .. e^-6 (loud speech).
SHAPE_SCALE = 4.0
ENERGY_OFFSET, ENERGY_SCALE = 12.0, 4.0
F0_REFERENCE_HZ = 150.0


def mel_filterbank(bands: int = MEL_BANDS, bins: int = WINDOW_SAMPLES // 2 + 1) -> torch.Tensor:
    """Triangular mel filters over the bins of a 640-point spectrum: [bins, bands]."""
    hz = torch.linspace(0, SAMPLE_RATE / 2, bins, dtype=torch.float64)
    mel = lambda f: 2595 * math.log10(1 + f / 700)  # noqa: E731
    mel_edges = torch.linspace(mel(50.0), mel(SAMPLE_RATE / 2), bands + 2, dtype=torch.float64)
    edges = 700 * (10 ** (mel_edges / 2595) - 1)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bank = torch.minimum((hz - low) / (centre - low), (high - hz) / (high - centre))
    return bank.clamp(min=0).T.float()


def _dft_basis(points: int, window: torch.Tensor) -> torch.Tensor:
    """[samples, 2 * bins]: x @ basis = (real parts, imaginary parts) of the points-point DFT
    of the windowed x (zero-padded when points > samples)."""
    samples = window.shape[0]
    bins = points // 2 + 1
    angle = 2 * math.pi * torch.arange(samples, dtype=torch.float64)[:, None] \
        * torch.arange(bins, dtype=torch.float64)[None, :] / points
    window = window.double()[:, None]
    return torch.cat([window * torch.cos(angle), -window * torch.sin(angle)], dim=1).float()


class AcousticDescriptors(nn.Module):
    """[N, 640] raw windows -> [N, DESCRIPTORS] fixed descriptors."""

    out_features = DESCRIPTORS

    def __init__(self):
        super().__init__()
        n = WINDOW_SAMPLES
        hann = torch.hann_window(n, periodic=False, dtype=torch.float64)
        shortest_lag = int(SAMPLE_RATE / PITCH_RANGE_HZ[1])
        longest_lag = int(SAMPLE_RATE / PITCH_RANGE_HZ[0])
        lags = torch.arange(shortest_lag, longest_lag, dtype=torch.float64)
        # Autocorrelation = inverse DFT of the power of a 2n-point (zero-padded, so no
        # circular wrap) DFT; its real signal makes bins 1..n-1 count twice.
        bins = torch.arange(n + 1, dtype=torch.float64)
        weights = torch.full((n + 1,), 2.0, dtype=torch.float64)
        weights[0] = weights[-1] = 1.0
        inverse = weights[:, None] * torch.cos(math.pi * bins[:, None] * lags[None, :] / n) / (2 * n)
        # Fixed matrices, rebuilt at construction: not saved in checkpoints.
        self.register_buffer("spectrum_basis", _dft_basis(n, hann), persistent=False)
        self.register_buffer("mel_bank", mel_filterbank(), persistent=False)
        self.register_buffer("padded_basis", _dft_basis(2 * n, torch.ones(n)), persistent=False)
        self.register_buffer("autocorrelation_basis", inverse.float(), persistent=False)
        self.register_buffer("lag_hz", (SAMPLE_RATE / lags).float(), persistent=False)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        x = windows - windows.mean(dim=1, keepdim=True)
        mel = _power(x @ self.spectrum_basis) @ self.mel_bank
        # A floor 60 dB under the mean band, not an absolute one, so the shape does not
        # depend on the level even where a band is empty.
        log_mel = torch.log(mel + 1e-6 * mel.mean(dim=1, keepdim=True) + 1e-20)
        shape = (log_mel - log_mel.mean(dim=1, keepdim=True)) / SHAPE_SCALE
        energy = (x * x).sum(dim=1, keepdim=True)
        # Floors far below any real microphone's noise (-140 dBFS), so that a quiet room
        # turned down 30 dB still reads as itself plus 30 dB, not as the floor.
        log_energy = (torch.log(energy / WINDOW_SAMPLES + 1e-14) + ENERGY_OFFSET) / ENERGY_SCALE
        autocorrelation = (_power(x @ self.padded_basis) @ self.autocorrelation_basis) \
            / (energy + 1e-12)
        voicing, peak = autocorrelation.max(dim=1, keepdim=True)
        f0 = self.lag_hz[peak]
        return torch.cat([shape, log_energy, torch.log2(f0 / F0_REFERENCE_HZ), voicing], dim=1)


def _power(spectrum: torch.Tensor) -> torch.Tensor:
    """|X|^2 from (real parts, imaginary parts) side by side."""
    real, imaginary = spectrum.chunk(2, dim=1)
    return real * real + imaginary * imaginary
