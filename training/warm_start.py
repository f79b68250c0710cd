"""Start the face expert from an exported single-LSTM model's face pathway (ONNX -> torch).

The default model's face expert is the face reading of `affect-small-v5` (FER+ FER2013Valid
0.857 / 0.839 face only), taken from its ONNX file: the exporter folded each BatchNorm into
the convolution before it, so each conv's weight and bias come back into our ResNet with
an identity BatchNorm carrying the bias. v5's first LSTM layer read [audio features 80,
face features 256, face mask 1]; the face expert reads the face alone, so v5's audio
columns are replaced by what they contributed on a quiet microphone (its audio CNN on the
noise floor, the condition of its face-only evaluation), folded into the LSTM bias.

Used by training/train_experts.py (the recipe's [face] source).
"""
from __future__ import annotations

import re

import numpy as np
import torch

from training.data.sequences import NOISE_FLOOR
from training.experts import FaceExpert
from training.network import AudioCNN

# ONNX LSTM gates are ordered (input, output, forget, cell); PyTorch's (input, forget,
# cell, output).
ONNX_TO_TORCH_GATES = (0, 2, 3, 1)


class WarmStartError(ValueError):
    """The ONNX file is not a single-LSTM affect model with the expected layout."""


def _reorder_gates(array: np.ndarray, hidden: int) -> np.ndarray:
    blocks = [array[k * hidden:(k + 1) * hidden] for k in range(4)]
    return np.concatenate([blocks[k] for k in ONNX_TO_TORCH_GATES])


def _initializers(graph) -> dict[str, np.ndarray]:
    """Every constant tensor of the graph by name: initializers, Constant nodes and
    Identity nodes over them (the exporter shares equal folded weights, e.g. all-zero ones,
    through Identity)."""
    from onnx import numpy_helper

    tensors = {item.name: numpy_helper.to_array(item) for item in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    tensors[node.output[0]] = numpy_helper.to_array(attribute.t)
        elif node.op_type == "Identity" and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]]
    return tensors


def quiet_audio_features(weights: dict[str, np.ndarray], network: dict, windows: int = 512,
                         seed: int = 0) -> np.ndarray:
    """The mean audio features of the source model's audio CNN on the noise floor."""
    cnn = AudioCNN(network["audio_filters"], 0.0, network["audio_gain"],
                   network["audio_pooling"], network.get("audio_kernel", 20))
    cnn.load_state_dict({name: torch.from_numpy(weights[f"audio.{name}"].copy())
                         for name in ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias")})
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy((rng.standard_normal((windows, 640)) * NOISE_FLOOR)
                             .astype(np.float32))
    with torch.no_grad():
        return cnn.eval()(noise).mean(dim=0).numpy()


def load_face_pathway(expert: FaceExpert, onnx_path) -> None:
    """Copy the face pathway of an exported single-LSTM model into ``expert`` (in place)."""
    import onnx

    from models.runtime import read_spec

    spec = read_spec(onnx_path)
    network = spec.network
    if network.get("fusion", "lstm") != "lstm" or network.get("audio_descriptors"):
        raise WarmStartError(f"{onnx_path}: not a single-LSTM model without descriptors")
    graph = onnx.load(str(onnx_path)).graph
    weights = _initializers(graph)
    convs, lstms, head = _face_nodes(graph, weights)
    _load_visual(expert.visual, convs)
    if len(lstms) != expert.lstm.num_layers or head is None:
        raise WarmStartError(f"{onnx_path}: expected {expert.lstm.num_layers} LSTM layers "
                             "and a head")
    audio_width = lstms[0][0].shape[2] - expert.visual.out_features - 1
    quiet = quiet_audio_features(weights, network)
    if quiet.shape[0] != audio_width:
        raise WarmStartError(f"audio features {quiet.shape[0]} vs LSTM columns {audio_width}")
    _load_lstm(expert.lstm, lstms, quiet, audio_width)
    with torch.no_grad():
        expert.head.weight.copy_(torch.from_numpy(head.T.copy()))
        expert.head.bias.copy_(torch.from_numpy(weights["head.bias"].copy()))
        expert.precision.weight.zero_()
        expert.precision.bias.zero_()


def _face_nodes(graph, weights: dict[str, np.ndarray]):
    """The graph's visual convs (name -> folded weight, bias), LSTM layers ([W, R, B]
    each) and head matrix (None when absent), in graph order."""
    convs, lstms, head = {}, [], None
    for node in graph.node:
        if node.op_type == "Conv" and node.name.startswith("/visual/"):
            convs[node.name] = (weights[node.input[1]], weights[node.input[2]])
        elif node.op_type == "LSTM":
            lstms.append([weights[name] for name in node.input[1:4]])
        elif node.op_type == "MatMul" and node.name == "/head/MatMul":
            head = weights[node.input[1]]
    return convs, lstms, head


def _conv_and_norm(node_name: str) -> tuple[str, str]:
    """Module paths of the conv an ONNX Conv node came from and of the BatchNorm after it."""
    # "/visual/stages/stages.2/downsample/downsample.0/Conv" -> "stages.2.downsample.0"
    parts = node_name.split("/")[2:-1]
    path = ".".join(part for index, part in enumerate(parts)
                    if not (index + 1 < len(parts) and parts[index + 1].startswith(part + ".")))
    if path.endswith("downsample.0"):
        return path, path[:-1] + "1"
    if path == "stem.0":
        return path, "stem.1"
    match = re.fullmatch(r"(stages\.\d+)\.conv(\d)", path)
    if not match:
        raise WarmStartError(f"unexpected visual conv {node_name}")
    return path, f"{match[1]}.bn{match[2]}"


def _load_visual(visual, convs: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Each folded conv back as conv weight + an identity BatchNorm carrying the bias."""
    modules = dict(visual.named_modules())
    for node_name, (weight, bias) in convs.items():
        conv_path, bn_path = _conv_and_norm(node_name)
        conv, norm = modules[conv_path], modules[bn_path]
        if tuple(conv.weight.shape) != weight.shape:
            raise WarmStartError(f"{conv_path}: shape {tuple(conv.weight.shape)} vs {weight.shape}")
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(weight.copy()))
            norm.weight.fill_(1.0)
            norm.bias.copy_(torch.from_numpy(bias.copy()))
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)  # sqrt(var + eps) = 1
    if len(convs) != sum(1 for m in visual.modules() if isinstance(m, torch.nn.Conv2d)):
        raise WarmStartError("the visual branch's convolutions do not match")


def _load_lstm(lstm: torch.nn.LSTM, layers: list, quiet: np.ndarray, audio_width: int) -> None:
    """ONNX LSTM layers into ``lstm``, gates reordered; layer 0 loses its audio columns."""
    hidden = lstm.hidden_size
    for layer, (w, r, b) in enumerate(layers):
        w, r, b = w[0], r[0], b[0]
        bias_ih, bias_hh = b[:4 * hidden], b[4 * hidden:]
        if layer == 0:  # the quiet microphone's contribution becomes part of the bias
            bias_ih = bias_ih + w[:, :audio_width] @ quiet
            w = w[:, audio_width:]
        with torch.no_grad():
            getattr(lstm, f"weight_ih_l{layer}").copy_(
                torch.from_numpy(_reorder_gates(w, hidden)))
            getattr(lstm, f"weight_hh_l{layer}").copy_(
                torch.from_numpy(_reorder_gates(r, hidden)))
            getattr(lstm, f"bias_ih_l{layer}").copy_(
                torch.from_numpy(_reorder_gates(bias_ih, hidden)))
            getattr(lstm, f"bias_hh_l{layer}").copy_(
                torch.from_numpy(_reorder_gates(bias_hh, hidden)))
