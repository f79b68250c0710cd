"""The voice expert of the default model: level-free descriptors, running statistics, a head.

Why this design (issue 27): the raw-waveform CNN read the microphone's gain (the same clips
20 dB louder scored arousal CCC 0.05), and an LSTM over 960 training clips learnt less
than a 2016 feature baseline (eGeMAPS functionals + SVR). So the voice is read like that
baseline, but causally and inside the graph:

1. per 40 ms window, descriptors that do not change with the gain (the window is only ever
   compared with itself): 40 log-mel bands relative to their mean (spectral shape and
   tilt), log F0 and voicing (training/audio_descriptors.py), and the window's log energy,
   of which only differences are used;
2. running statistics of those descriptors over the voiced windows of the last seconds:
   voicing-weighted means and standard deviations (an exponentially fading window), the
   share of voiced windows and the energy's spread. A gain adds the same constant to every
   log energy, which moves the energy's mean and nothing else; the mean is left out, so
   every statistic is the same at any gain (up to clipping and the noise floor);
3. an LSTM over those statistics and the current window's descriptors -> arousal,
   valence (tanh) and a confidence (log precision) that the fusion uses.

The fading sums are a linear recurrence S_t = decay * S_{t-1} + u_t over positive
quantities, run as a ReLU RNN with fixed weights (identity input, decay on the diagonal):
ONNX Runtime runs it natively for any number of steps, so live (T=1, state carried) and
offline (long T) give the same numbers, and the state is an ordinary recurrent state.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from models.spec import STEPS_PER_SECOND
from training.audio_descriptors import MEL_BANDS, AcousticDescriptors

SHAPE_FEATURES = MEL_BANDS + 2  # mel shape bands, log2 F0 ratio, voicing
# Descriptors are shifted by this before summing so that every summed quantity is positive
# (the ReLU of the recurrence is then the identity); undone when the means are read.
SUM_OFFSET = 8.0
# Voicing (normalised autocorrelation peak) below 0.45 is noise or breath, above 0.75 clear
# voice: the weight of a window in the statistics ramps between the two.
VOICED_FROM, VOICED_FULL = 0.45, 0.75
CONFIDENCE_HIDDEN = 16


class RunningSums(nn.Module):
    """[B,T,K] positive inputs -> [B,T,K] exponentially fading sums, state [1,B,K].

    S_t = decay * S_{t-1} + u_t with decay = exp(-1 / (seconds * 25 steps)); a ReLU RNN
    with fixed weights computes exactly that while S and u stay non-negative."""

    def __init__(self, channels: int, seconds: float):
        super().__init__()
        self.channels = channels
        self.rnn = nn.RNN(channels, channels, num_layers=1, nonlinearity="relu", bias=False,
                          batch_first=True)
        decay = math.exp(-1.0 / (seconds * STEPS_PER_SECOND))
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(torch.eye(channels))
            self.rnn.weight_hh_l0.copy_(torch.eye(channels) * decay)
        for parameter in self.rnn.parameters():
            parameter.requires_grad_(False)

    def forward(self, inputs: torch.Tensor, state: torch.Tensor):
        return self.rnn(inputs, state)


class VoiceExpert(nn.Module):
    """audio [B,T,640] and state (h, c [layers,B,hidden], sums [1,B,K]) -> (reading
    [B,T,2] in -1..1, log precision [B,T,2], h, c, sums)."""

    def __init__(self, hidden: int = 64, layers: int = 2, memory_seconds: float = 4.0,
                 dropout: float = 0.2):
        super().__init__()
        self.descriptors = AcousticDescriptors()
        d = SHAPE_FEATURES
        # summed: weight, weight x descriptors, weight x descriptors^2, weight x energy,
        # weight x energy^2, and 1 (every window: for the voiced share)
        self.sum_channels = 1 + 2 * d + 2 + 1
        self.sums = RunningSums(self.sum_channels, memory_seconds)
        # statistics: means (d), standard deviations (d), energy sd, voiced share, and
        # log of the voiced weight seen (how much evidence there is); current window:
        # descriptors (d), voicing weight, energy relative to the running mean energy
        self.in_features = 2 * d + 3 + d + 2
        self.evidence_index = 2 * d + 2  # log1p(voiced weight in the fading window)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(self.in_features, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, 2)
        # The confidence reads how much voice there is (the voiced share and evidence of
        # the last seconds, the current window's voicing) and the reading itself; not the
        # LSTM's units, so the fusion stage can train it on readings of voices this expert
        # never heard (cross-fitted experts, training/train_experts.py), and not the
        # spectral statistics, whose values on another corpus or microphone it has never
        # seen (a confidence read from them trusted the voice's worst dimension there).
        self.confidence_inputs = [2 * d + 1, 2 * d + 2, 3 * d + 3]  # share, evidence, voicing
        self.precision = nn.Sequential(nn.Linear(len(self.confidence_inputs) + 2,
                                                 CONFIDENCE_HIDDEN),
                                       nn.Tanh(), nn.Linear(CONFIDENCE_HIDDEN, 2))

    @property
    def state_size(self) -> int:
        return self.sum_channels

    def window_descriptors(self, audio: torch.Tensor) -> torch.Tensor:
        """[B,T,640] -> [B,T,43]: mel shape (40), energy, log2 F0 ratio, voicing."""
        batch, steps = audio.shape[:2]
        return self.descriptors(audio.reshape(batch * steps, -1)).reshape(batch, steps, -1)

    def forward(self, audio, h, c, sums, descriptors=None):
        """-> (reading, log precision, h, c, sums).
        ``descriptors``: the fixed [B,T,43] descriptors of ``audio`` when already known
        (training caches them); ``audio`` is then not read."""
        encoded, h, c, sums = self.encode(audio, h, c, sums, descriptors)
        return (*self.read(encoded), h, c, sums)

    def encode(self, audio, h, c, sums, descriptors=None):
        """-> ([LSTM outputs, statistics] [B,T,hidden + in_features], h, c, sums)."""
        raw = self.window_descriptors(audio) if descriptors is None else descriptors
        features, sums = self.statistics(raw, sums)
        outputs, (h, c) = self.lstm(self.dropout(features), (h, c))
        return torch.cat([outputs, features], dim=-1), h, c, sums

    def read(self, encoded):
        """-> (reading [B,T,2], log precision [B,T,2])."""
        outputs = encoded[..., :self.lstm.hidden_size]
        reading = torch.tanh(self.head(outputs))
        return reading, self.log_precision(encoded[..., self.lstm.hidden_size:], reading)

    def log_precision(self, features, reading):
        """Confidence from the statistics [B,T,in_features] and a reading [B,T,2].

        Gated by the voiced evidence of the last seconds: where no voice has been heard
        (digital silence, a muted microphone) the voice gets no say beside a face,
        whatever the learnt part says."""
        amount = features[..., self.confidence_inputs]
        learnt = self.precision(torch.cat([amount, reading], dim=-1)).clamp(-8.0, 8.0)
        # exp - 1, not expm1: ONNX has no expm1
        heard = torch.exp(features[..., self.evidence_index:self.evidence_index + 1]) - 1.0
        # floor 1e-12: beside any face (log precision >= -8) the silent voice's weight is
        # below 1e-5 of the face's; without a face it is still > 0, so the output is the
        # voice reading rather than 0 / 0
        return learnt + torch.log(heard / (heard + 1.0) + 1e-12)

    def statistics(self, raw: torch.Tensor, state: torch.Tensor):
        """[B,T,43] descriptors, sums [1,B,K] -> ([B,T,in_features], new sums)."""
        shape = torch.cat([raw[..., :MEL_BANDS], raw[..., MEL_BANDS + 1:]], dim=-1)  # [B,T,d]
        energy = raw[..., MEL_BANDS:MEL_BANDS + 1]  # (ln energy + 12) / 4, about -3..2
        voicing = raw[..., -1:]
        weight = ((voicing - VOICED_FROM) / (VOICED_FULL - VOICED_FROM)).clamp(0.0, 1.0)
        shifted = shape + SUM_OFFSET
        energy_shifted = energy + SUM_OFFSET
        inputs = torch.cat([weight, weight * shifted, weight * shifted * shifted,
                            weight * energy_shifted, weight * energy_shifted * energy_shifted,
                            torch.ones_like(weight)], dim=-1)
        sums, new_state = self.sums(inputs, state)
        d = shape.shape[-1]
        total = sums[..., :1]
        safe = total.clamp_min(1e-3)
        mean = sums[..., 1:1 + d] / safe
        square = sums[..., 1 + d:1 + 2 * d] / safe
        sd = (square - mean * mean).clamp_min(0.0).add(1e-4).sqrt()
        energy_mean = sums[..., 1 + 2 * d:2 + 2 * d] / safe
        energy_square = sums[..., 2 + 2 * d:3 + 2 * d] / safe
        energy_sd = (energy_square - energy_mean * energy_mean).clamp_min(0.0).add(1e-4).sqrt()
        share = total / sums[..., -1:].clamp_min(1e-3)
        evidence = torch.log1p(total)
        # Until some voice has been heard the means are of nothing: zeros, and the evidence
        # feature tells the LSTM so.
        seen = (total > 1e-3).to(mean.dtype)
        features = torch.cat([
            (mean - SUM_OFFSET) * seen, sd * seen, energy_sd * seen, share, evidence,
            shape, weight, (energy_shifted - energy_mean) * seen], dim=-1)
        return features, new_state
