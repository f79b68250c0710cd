"""The end-to-end network of Tzirakis et al. (IEEE JSTSP 2017) in PyTorch.

audio [B,T,640] -> audio CNN -> 1,280 features per 40 ms step
face  [B,T,C,H,W] -> ResNet -> 2,048 (ResNet-50) features, zeroed where face_mask = 0
concat (+ face_mask) -> 2-layer LSTM (256) -> linear -> (arousal, valence) per step

The LSTM state is an explicit input and output, so the same module serves live
streaming (T=1, state carried) and offline analysis (long T).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from models.spec import WINDOW_SAMPLES, FaceCrop
from training.audio_descriptors import AcousticDescriptors


@dataclass(frozen=True)
class NetworkConfig:
    """Every architectural choice; saved in each checkpoint so a model rebuilds from it."""

    audio_filters: int = 40  # conv filters in both audio layers (authors' code)
    # Taps of the first audio conv at 16 kHz: 20 (1.25 ms) in the authors' code. Longer
    # filters resolve pitch harmonics (100-300 Hz apart), which 1.25 ms cannot.
    audio_kernel: int = 20
    audio_dropout: float = 0.5  # dropout on the raw window, training only (slim default)
    # Fixed gain on the raw window before the CNN. Speech reaches the model at an RMS of
    # 0.005-0.08 (-46..-22 dBFS), so at gain 1 the conv biases swamp the signal and the
    # audio branch learns very slowly; 30 brings typical speech near unit scale.
    audio_gain: float = 1.0
    # How the second conv layer's [filters x 320] map becomes features. "filters" (the
    # paper): max-pool across groups of 10 filters, 1,280 features tied to sample positions.
    # "time": log(1 + max) and log(1 + mean) of each filter over the window, 2 x filters
    # features that do not move when the speech shifts by a few samples.
    audio_pooling: str = "filters"
    # Also feed the LSTM fixed acoustic descriptors of each window (log-mel shape, energy,
    # pitch, voicing; training/audio_descriptors.py), which carry voice valence that the
    # learned front end misses.
    audio_descriptors: bool = False
    resnet_block: str = "bottleneck"  # "bottleneck" (ResNet-50) or "basic" (ResNet-18/34)
    resnet_layers: tuple[int, ...] = (3, 4, 6, 3)
    resnet_width: int = 64  # channels of the stem; stages use width x 1, 2, 4, 8
    face_size: int = 96
    face_channels: int = 3
    face_margin: float = 0.15
    lstm_hidden: int = 256
    lstm_layers: int = 2
    lstm_dropout: float = 0.0
    # Classes of a training-only head beside the arousal/valence head (labels.CATEGORIES;
    # 0 = none). It reads the same LSTM output; the exported graph leaves it out.
    category_classes: int = 8
    # "lstm" (the paper): one LSTM over the concatenated audio and face features
    # (AffectNet). "experts": a face expert and a level-free voice expert, each with its own
    # LSTM and reading, fused by their learnt confidence (training/experts.py, ExpertsNet);
    # lstm_hidden is then the face LSTM's width.
    fusion: str = "lstm"
    voice_hidden: int = 64  # "experts": the voice LSTM's width
    voice_memory_seconds: float = 4.0  # "experts": fading window of the voice statistics

    @property
    def face_crop(self) -> FaceCrop:
        return FaceCrop(size=self.face_size, channels=self.face_channels, margin=self.face_margin)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "NetworkConfig":
        values = dict(values)
        values["resnet_layers"] = tuple(values["resnet_layers"])
        values.setdefault("category_classes", 0)  # checkpoints from before the head
        values.setdefault("audio_pooling", "filters")  # checkpoints from before the option
        values.setdefault("audio_kernel", 20)  # likewise
        values.setdefault("audio_descriptors", False)  # likewise
        values.setdefault("fusion", "lstm")  # likewise
        return cls(**values)


PRESETS: dict[str, NetworkConfig] = {
    # Exactly the paper: ResNet-50 on 96x96 RGB, 2x256 LSTM.
    "paper": NetworkConfig(),
    # A 2-core laptop CPU trains and runs this comfortably: ResNet-18 on 64x64 grey faces
    # (FER+ faces are grey anyway), same audio CNN and LSTM. Audio gain 30 (see
    # NetworkConfig) and raw-window dropout 0.1 instead of 0.5: with 960 RAVDESS training
    # clips, voice-only CCC per held-out clip after 3 voice epochs (arousal / valence) was
    # 0.58 / 0.24 at dropout 0.1 vs 0.48 / 0.21 at 0.5 (both at gain 30).
    "light": replace(NetworkConfig(), resnet_block="basic", resnet_layers=(2, 2, 2, 2),
                     face_size=64, face_channels=1, audio_gain=30.0, audio_dropout=0.1),
    # Lighter still: half-width ResNet-18 on 48x48 grey (FER+'s native resolution).
    "small": replace(NetworkConfig(), resnet_block="basic", resnet_layers=(2, 2, 2, 2),
                     resnet_width=32, face_size=48, face_channels=1, audio_gain=30.0,
                     audio_dropout=0.1),
    # For tests only: seconds to build, train a few steps and export.
    "tiny": replace(NetworkConfig(), audio_filters=10, resnet_block="basic",
                    resnet_layers=(1, 1, 1, 1), resnet_width=8, face_size=32, face_channels=1,
                    lstm_hidden=32),
}
# The default model's design (training/experts.py): `small`'s face pathway as a face expert
# beside a level-free voice expert, fused by confidence.
PRESETS["experts"] = replace(PRESETS["small"], fusion="experts")
PRESETS["tiny-experts"] = replace(PRESETS["tiny"], fusion="experts", voice_hidden=16)


def build_network(config: NetworkConfig) -> nn.Module:
    """The network a config describes: AffectNet (one LSTM) or ExpertsNet (two experts)."""
    if config.fusion == "experts":
        from training.experts import ExpertsNet

        return ExpertsNet(config)
    if config.fusion != "lstm":
        raise ValueError(f"fusion must be 'lstm' or 'experts', not {config.fusion!r}")
    return AffectNet(config)


def preset(name: str) -> NetworkConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def pad_same(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding for stride 1 (even kernels pad one more on the right)."""
    left = (kernel - 1) // 2
    return F.pad(x, (left, kernel - 1 - left))


def conv_same_by_fft(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """conv(pad_same(x, kernel)) computed through the FFT: the same cross-correlation, with
    float rounding of ~1e-6 relative. For the audio CNN's 40-channel, 40-tap second layer
    that is 2.3-2.9x less time than direct convolution on a 2-core CPU (fwd + bwd; the
    whole audio CNN 1.8x: benchmarks/audio_training_speed.py). A circular convolution at
    least as long as the padded input wraps only into the first kernel-1 outputs, which
    are dropped."""
    kernel = conv.kernel_size[0]
    padded = pad_same(x, kernel)
    length = padded.shape[-1]
    size = fast_fft_size(length)
    spectrum = torch.fft.rfft(padded, n=size)  # [N, in, bins]
    # a cross-correlation is a convolution with the kernel reversed
    kernel_spectrum = torch.fft.rfft(conv.weight.flip(-1), n=size)  # [out, in, bins]
    product = torch.einsum("nib,oib->nob", spectrum, kernel_spectrum)
    full = torch.fft.irfft(product, n=size)
    return full[..., kernel - 1:length] + conv.bias[:, None]


def fast_fft_size(length: int) -> int:
    """The smallest size >= length with no prime factor above 5: FFTs of such sizes are
    fast, while 359 (the second convolution's padded length) is prime and 1.2x slower."""
    size = length
    while True:
        rest = size
        for factor in (2, 3, 5):
            while rest % factor == 0:
                rest //= factor
        if rest == 1:
            return size
        size += 1


AUDIO_POOLINGS = ("filters", "time")  # NetworkConfig.audio_pooling


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX). Without it
    PyTorch emulates bfloat16 autocast, and the audio CNN trains 6x slower than in float32
    (0.17x on an AMD EPYC with AVX2 only: python benchmarks/audio_training_speed.py)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


class AudioCNN(nn.Module):
    """Raw 640-sample window -> features, as in the authors' TensorFlow code.

    dropout -> conv 40x20 (SAME; 20 = kernel) + ReLU -> max-pool 2 in time -> conv 40x40 (SAME) + ReLU
    -> pooling "filters" (the paper): max-pool 10 across the filters -> 320 time positions
    x 4 = 1,280; or pooling "time": log(1 + max) and log(1 + mean) of each filter -> 80.
    With descriptors, the window's fixed acoustic descriptors (43) follow those features.
    """

    def __init__(self, filters: int = 40, dropout: float = 0.5, gain: float = 1.0,
                 pooling: str = "filters", kernel: int = 20, descriptors: bool = False):
        super().__init__()
        self.gain = gain
        self.kernel = kernel
        if pooling not in AUDIO_POOLINGS:
            raise ValueError(f"audio_pooling must be 'filters' or 'time', not {pooling!r}")
        if pooling == "filters" and filters % 10:
            raise ValueError("audio_filters must be a multiple of 10 (pooled across filters by 10)")
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.conv1 = nn.Conv1d(1, filters, kernel)
        self.conv2 = nn.Conv1d(filters, filters, 40)
        self.out_features = (WINDOW_SAMPLES // 2 * filters // 10 if pooling == "filters"
                             else 2 * filters)
        self.descriptors = AcousticDescriptors() if descriptors else None
        if self.descriptors is not None:
            self.out_features += self.descriptors.out_features
        # Training only (never exported): the convolutions in bfloat16 on CPU, 1.5x faster
        # where the CPU has native bfloat16 (cpu_has_native_bfloat16); the weights and
        # everything after stay float32.
        self.train_in_bfloat16 = False
        # Training only: the second convolution through the FFT (conv_same_by_fft); the
        # first has one input channel and 20 taps, where direct convolution is faster.
        self.train_by_fft = False

    def forward(self, windows: torch.Tensor) -> torch.Tensor:  # [N, 640] -> [N, out_features]
        features = self.learned_features(windows)
        if self.descriptors is None:
            return features
        # From the clean window: the raw-window dropout is there to regularise the CNN.
        return torch.cat([features, self.descriptors(windows)], dim=1)

    def learned_features(self, windows: torch.Tensor) -> torch.Tensor:
        reduced = self.train_in_bfloat16 and self.training and windows.device.type == "cpu"
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=reduced):
            x = self.dropout(windows * self.gain).unsqueeze(1)
            x = F.relu(self.conv1(pad_same(x, self.kernel)))
            x = F.max_pool1d(x, 2)
            by_fft = self.train_by_fft and self.training
            x = F.relu(conv_same_by_fft(x, self.conv2) if by_fft
                       else self.conv2(pad_same(x, self.conv2.kernel_size[0])))  # [N, filters, 320]
        x = x.float()
        if self.pooling == "time":
            # log: speech level spans ~40 dB, which the LSTM should see as offsets, not scale.
            return torch.log1p(torch.cat([x.amax(dim=2), x.mean(dim=2)], dim=1))
        x = F.max_pool1d(x.transpose(1, 2), 10)  # pool across filters: [N, 320, filters/10]
        return x.flatten(1)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(inplanes, planes * self.expansion, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = _shortcut(inplanes, planes * self.expansion, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.downsample(x))


def _shortcut(inplanes: int, outplanes: int, stride: int) -> nn.Module:
    if stride == 1 and inplanes == outplanes:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride, bias=False),
                         nn.BatchNorm2d(outplanes))


class ResNet(nn.Module):
    """He et al. (2016) ResNet without the classifier: image -> pooled features."""

    def __init__(self, block: str, layers: tuple[int, ...], width: int, in_channels: int):
        super().__init__()
        block_type = {"basic": BasicBlock, "bottleneck": Bottleneck}[block]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stages, inplanes = [], width
        for index, blocks in enumerate(layers):
            planes = width * 2 ** index
            for block_index in range(blocks):
                stride = 2 if index > 0 and block_index == 0 else 1
                stages.append(block_type(inplanes, planes, stride))
                inplanes = planes * block_type.expansion
        self.stages = nn.Sequential(*stages)
        self.out_features = inplanes
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # Zero the last BN of each residual branch: every block starts as identity, which
        # trains faster and more stably from scratch (Goyal et al., 2017).
        for module in self.modules():
            if isinstance(module, (BasicBlock, Bottleneck)):
                last_bn = module.bn3 if isinstance(module, Bottleneck) else module.bn2
                nn.init.zeros_(last_bn.weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [N,C,H,W] -> [N, features]
        return self.stages(self.stem(images)).mean(dim=(2, 3))


def masked_visual_features(visual: ResNet, face: torch.Tensor, face_mask: torch.Tensor,
                           training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """face [B,T,C,H,W], face_mask [B,T] -> (ResNet features [B*T,F], zeros where no face;
    the mask [B*T,1]). ``training``: the owning network's mode."""
    batch, steps = face_mask.shape
    faces = face.reshape(batch * steps, *face.shape[2:])
    mask = face_mask.reshape(batch * steps, 1)
    present = mask[:, 0] > 0.5
    if training:
        # Only real faces go through the ResNet: saves the compute of voice-only steps
        # and keeps missing-face zeros out of the BatchNorm statistics.
        features = faces.new_zeros(batch * steps, visual.out_features)
        if bool(present.any()):
            features = features.index_put((present,), visual(faces[present]))
        return features, mask
    # The exported graph: one static path. Selecting zeros where no face was found makes
    # the output independent of the face pixels there.
    features = visual(faces)
    return torch.where(present[:, None], features, torch.zeros_like(features)), mask


class AffectNet(nn.Module):
    """Audio CNN + ResNet + LSTM; forward(audio, face, face_mask, h, c) -> (av, h, c)."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        self.audio = AudioCNN(config.audio_filters, config.audio_dropout, config.audio_gain,
                              config.audio_pooling, config.audio_kernel, config.audio_descriptors)
        self.visual = ResNet(config.resnet_block, config.resnet_layers, config.resnet_width,
                             config.face_channels)
        # +1: the LSTM sees the face mask itself, so "no face" differs from "a face whose
        # features happen to be small".
        fused = self.audio.out_features + self.visual.out_features + 1
        self.lstm = nn.LSTM(fused, config.lstm_hidden, config.lstm_layers, batch_first=True,
                            dropout=config.lstm_dropout if config.lstm_layers > 1 else 0.0)
        self.head = nn.Linear(config.lstm_hidden, 2)
        self.category_head = (nn.Linear(config.lstm_hidden, config.category_classes)
                              if config.category_classes else None)
        # Training only (never exported): the chance that a whole sequence's acoustic
        # descriptors are zeroed, so the LSTM also learns to read the voice from the learned
        # features alone and cannot lean on the descriptors for every new voice.
        self.descriptor_dropout = 0.0

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.config.lstm_layers, batch, self.config.lstm_hidden)
        return torch.zeros(shape), torch.zeros(shape)

    def features(self, audio: torch.Tensor, face: torch.Tensor,
                 face_mask: torch.Tensor) -> torch.Tensor:
        """Per-step fused features [B,T,F]; the CNNs batch over B*T."""
        batch, steps = audio.shape[0], audio.shape[1]
        audio_features = self.audio(audio.reshape(batch * steps, audio.shape[2]))
        if self.training and self.descriptor_dropout > 0 and self.audio.descriptors is not None:
            audio_features = self.drop_descriptors(audio_features, batch, steps)
        visual_features, mask = masked_visual_features(self.visual, face, face_mask,
                                                       self.training)
        fused = torch.cat([audio_features, visual_features, mask], dim=1)
        return fused.reshape(batch, steps, -1)

    def drop_descriptors(self, audio_features: torch.Tensor, batch: int,
                         steps: int) -> torch.Tensor:
        """Zero the descriptor columns of whole sequences, each with descriptor_dropout."""
        kept = torch.rand(batch, 1, device=audio_features.device) >= self.descriptor_dropout
        kept = kept.repeat_interleave(steps, dim=0).to(audio_features.dtype)  # [B*T, 1]
        learned = self.audio.out_features - self.audio.descriptors.out_features
        return torch.cat([audio_features[:, :learned], audio_features[:, learned:] * kept],
                         dim=1)

    def forward(self, audio, face, face_mask, h, c, with_categories: bool = False):
        """-> (arousal/valence [B,T,2], h, c), plus category logits [B,T,K] when asked."""
        outputs, (h_out, c_out) = self.lstm(self.features(audio, face, face_mask), (h, c))
        if not with_categories:
            return self.head(outputs), h_out, c_out
        if self.category_head is None:
            raise ValueError("this network has no category head (category_classes = 0)")
        return self.head(outputs), h_out, c_out, self.category_head(outputs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def with_fresh_face_input(model: AffectNet, seed: int = 0) -> AffectNet:
    """A copy with the LSTM's input weights from the visual features drawn afresh (PyTorch's
    LSTM initialisation, from ``seed``); every other weight is kept. The face stage leaves
    those weights so large that the gates saturate whenever a face is in view, and a fused
    stage started from them never learns to hear the voice (training/fusion_probe.py: 1.00 x
    face + 0.00 x voice); restarting them lets it weigh both. Voice-only output is unchanged:
    without a face these columns multiply zeros."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        fresh = AffectNet(model.config)
    converted = copy.deepcopy(model)
    start = model.audio.out_features
    columns = slice(start, start + model.visual.out_features)
    with torch.no_grad():
        converted.lstm.weight_ih_l0[:, columns] = fresh.lstm.weight_ih_l0[:, columns]
    return converted


def with_audio_branch(model: AffectNet, pooling: str | None = None,
                      kernel: int | None = None, descriptors: bool | None = None) -> AffectNet:
    """The same network with another audio pooling, first-layer kernel and/or descriptors:
    every weight is kept except the LSTM's input weights from the audio features, which start
    fresh (their width or meaning changes), and, for a new kernel, the first audio conv. Meant
    for a stage boundary after a stage that froze the audio branch, where those weights only
    ever saw silence."""
    config = replace(model.config, audio_pooling=pooling or model.config.audio_pooling,
                     audio_kernel=kernel or model.config.audio_kernel,
                     audio_descriptors=(model.config.audio_descriptors if descriptors is None
                                        else descriptors))
    if config == model.config:
        return model
    converted = AffectNet(config)
    state = converted.state_dict()
    old_audio, new_audio = model.audio.out_features, converted.audio.out_features
    for name, value in model.state_dict().items():
        if name == "lstm.weight_ih_l0":  # columns: audio features, then visual + face mask
            state[name][:, new_audio:] = value[:, old_audio:]
        elif not (name.startswith("audio.conv1.") and config.audio_kernel != model.config.audio_kernel):
            state[name] = value
    converted.load_state_dict(state)
    return converted.train(model.training)
