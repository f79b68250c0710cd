"""The default model's design: a face expert and a voice expert, fused by their confidence.

    face  [B,T,C,H,W] -> ResNet -> 2-layer LSTM -> face reading (tanh) + log precision
    audio [B,T,640]   -> level-free descriptors -> running statistics -> LSTM
                      -> voice reading (tanh) + log precision          (training/voice_expert.py)
    output = (p_face * face reading + p_voice * voice reading) / (p_face + p_voice)

per dimension, with p = exp(log precision) and p_face = 0 where face_mask is 0 (so without a
face the output is the voice reading exactly). Why (issue 27): one LSTM over concatenated
face and voice features (the paper's fusion, `AffectNet`) learnt to read the face alone
whenever one was in view (training/fusion_probe.py: 1.00 x face + 0.00 x voice), so a
shouting voice changed nothing. Here each modality has its own reading, and how much each
counts is learnt on sequences where face and voice disagree. The output is a weighted mean
of two tanh readings, so it stays within -1..1 by construction.

State: the contract's h and c ([layers, B, width]) hold both experts side by side:
columns [0, face_hidden) the face LSTM, [face_hidden, +voice_hidden) the voice LSTM, and the
rest of h's layer 0 the voice statistics' fading sums (c and h's other layers are unused
there and stay zero). Consumers carry h and c as before and need not know the layout.
"""
from __future__ import annotations

import torch
from torch import nn

from training.network import NetworkConfig, ResNet, masked_visual_features
from training.voice_expert import VoiceExpert


class FaceExpert(nn.Module):
    """Face crops -> ResNet features -> LSTM -> (reading, log precision)."""

    def __init__(self, config: NetworkConfig, hidden: int):
        super().__init__()
        self.visual = ResNet(config.resnet_block, config.resnet_layers, config.resnet_width,
                             config.face_channels)
        self.lstm = nn.LSTM(self.visual.out_features + 1, hidden, config.lstm_layers,
                            batch_first=True)
        self.head = nn.Linear(hidden, 2)
        self.precision = nn.Linear(hidden, 2)

    def features(self, face: torch.Tensor, face_mask: torch.Tensor) -> torch.Tensor:
        visual, mask = masked_visual_features(self.visual, face, face_mask, self.training)
        return torch.cat([visual, mask], dim=1).reshape(*face_mask.shape, -1)

    def forward(self, face, face_mask, h, c):
        outputs, h_out, c_out = self.encode(face, face_mask, h, c)
        return (*self.read(outputs), h_out, c_out)

    def encode(self, face, face_mask, h, c):
        """-> (LSTM outputs [B,T,hidden], h, c)."""
        outputs, (h_out, c_out) = self.lstm(self.features(face, face_mask), (h, c))
        return outputs, h_out, c_out

    def read(self, outputs):
        """-> (reading [B,T,2], log precision [B,T,2])."""
        # clamped, not tanh: the warm-started head (training/warm_start.py) was trained
        # without a squashing function and keeps its calibration inside -1..1
        reading = self.head(outputs).clamp(-1.0, 1.0)
        log_precision = self.precision(outputs).clamp(-8.0, 8.0)
        return reading, log_precision


class ExpertsNet(nn.Module):
    """forward(audio, face, face_mask, h, c) -> (arousal/valence [B,T,2], h, c), as AffectNet."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        if config.fusion != "experts":
            raise ValueError("ExpertsNet needs NetworkConfig(fusion='experts')")
        self.config = config
        self.face = FaceExpert(config, config.lstm_hidden)
        self.voice = VoiceExpert(hidden=config.voice_hidden,
                                 memory_seconds=config.voice_memory_seconds)
        self.face_hidden, self.voice_hidden = config.lstm_hidden, config.voice_hidden
        self.state_width = self.face_hidden + self.voice_hidden + self.voice.state_size

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.config.lstm_layers, batch, self.state_width)
        return torch.zeros(shape), torch.zeros(shape)

    def split_state(self, h: torch.Tensor, c: torch.Tensor):
        f, v = self.face_hidden, self.voice_hidden
        face_state = (h[:, :, :f], c[:, :, :f])
        voice_state = (h[:, :, f:f + v], c[:, :, f:f + v], h[:1, :, f + v:])
        return face_state, voice_state

    def join_state(self, face_state, voice_state) -> tuple[torch.Tensor, torch.Tensor]:
        (face_h, face_c), (voice_h, voice_c, sums) = face_state, voice_state
        layers = face_h.shape[0]
        sums_h = torch.cat([sums, torch.zeros_like(sums).expand(layers - 1, -1, -1)], dim=0)
        h = torch.cat([face_h, voice_h, sums_h], dim=2)
        c = torch.cat([face_c, voice_c, torch.zeros_like(sums_h)], dim=2)
        return h, c

    def experts(self, audio, face, face_mask, h, c, voice_descriptors=None):
        """Both readings and precisions, and the new state (training reads these)."""
        face_state, voice_state = self.split_state(h, c)
        face_reading, face_precision, face_h, face_c = self.face(
            face, face_mask, *face_state)
        voice_reading, voice_precision, voice_h, voice_c, sums = self.voice(
            audio, *voice_state, descriptors=voice_descriptors)
        h_out, c_out = self.join_state((face_h, face_c), (voice_h, voice_c, sums))
        return {"face": face_reading, "face_log_precision": face_precision,
                "voice": voice_reading, "voice_log_precision": voice_precision,
                "h": h_out, "c": c_out}

    @staticmethod
    def fuse(readings: dict, face_mask: torch.Tensor) -> torch.Tensor:
        face_weight = torch.exp(readings["face_log_precision"]) * face_mask.unsqueeze(-1)
        voice_weight = torch.exp(readings["voice_log_precision"])
        return ((face_weight * readings["face"] + voice_weight * readings["voice"])
                / (face_weight + voice_weight))

    def forward(self, audio, face, face_mask, h, c, with_categories: bool = False):
        readings = self.experts(audio, face, face_mask, h, c)
        fused = self.fuse(readings, face_mask)
        if with_categories:
            raise ValueError("ExpertsNet has no category head (training/train_experts.py "
                             "trains its experts on arousal and valence only)")
        return fused, readings["h"], readings["c"]
