"""The coders of IE-KD's auto-encoders, and a frozen copy of a module.

"Revisiting Knowledge Distillation: An Inheritance and Exploration Framework" (Huang et al.,
CVPR 2021, arXiv:2107.00181) compresses a feature map into a *factor* with an encoder of three
3×3 convolutions. :class:`FactorCoder` is that block as the authors' code builds it; it serves
as encoder (``C → F``) and as decoder (``F → C``). :class:`FactorAutoEncoder` pairs one of each.
:class:`FrozenModule` holds a trained encoder fixed: its weights become buffers (saved with the
model, never in ``parameters()`` and so never in an optimizer) and it stays in eval mode.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from kd_det.registry import MODELS, build_kd_module

__all__ = [
    "FactorAutoEncoder",
    "FactorCoder",
    "FrozenModule",
    "build_coder",
    "decode_info",
    "encode_info",
    "plain",
]

#: negative slope of the LeakyReLUs of the authors' code
NEGATIVE_SLOPE = 0.1


def _check_width(owner: str, **values: Any) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{owner}: {key} must be a positive int, got {value!r}")


def plain(value: Any) -> Any:
    """``value`` with every mapping turned into a ``dict`` and tuples into lists (a config's
    ``ConfigDict`` cannot be stored in a checkpoint that loads with ``weights_only``)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@MODELS.register_module()
class FactorCoder(nn.Module):
    """Three bias-free 3×3 convolutions, each followed by BatchNorm and LeakyReLU.

    As in the authors' code, with a LeakyReLU on the input too::

        x → σ → conv(C_in → C_in) → BN → σ → conv(C_in → C_out) → BN → σ
          → conv(C_out → C_out) → BN → σ          σ = LeakyReLU(negative_slope)

    Stride 1 and padding 1 keep the spatial size. Convolutions are initialised from
    ``N(0, 2 / (9 · C_out))`` (He, fan-out), BatchNorm to the identity.

    Args:
        in_channels: width of the input map.
        out_channels: width of the output map (the factor width for an encoder).
        negative_slope: slope of the LeakyReLUs (0.1).
    """

    def __init__(
        self, in_channels: int, out_channels: int, negative_slope: float = NEGATIVE_SLOPE
    ) -> None:
        super().__init__()
        _check_width("FactorCoder", in_channels=in_channels, out_channels=out_channels)
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
            raise ValueError(
                f"FactorCoder: negative_slope must be a number, got {negative_slope!r}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        widths = [
            (in_channels, in_channels),
            (in_channels, out_channels),
            (out_channels, out_channels),
        ]
        layers: list[nn.Module] = [nn.LeakyReLU(negative_slope)]
        for cin, cout in widths:
            layers += [
                nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.LeakyReLU(negative_slope),
            ]
        self.layers = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"FactorCoder expects maps [B, {self.in_channels}, H, W], got shape "
                f"{tuple(x.shape)}"
            )
        return self.layers(x)


def build_coder(cfg: Mapping[str, Any] | None, in_channels: int, out_channels: int) -> nn.Module:
    """Build a registered coder (``None``: :class:`FactorCoder`) from ``in_channels`` to
    ``out_channels``; it must map ``[B, in_channels, H, W]`` to ``[B, out_channels, H, W]``."""
    cfg = dict(type="FactorCoder") if cfg is None else dict(cfg)
    if "type" not in cfg:
        raise ValueError(
            f"a coder is a config dict with a 'type' (e.g. 'FactorCoder'), got {cfg!r}"
        )
    try:
        coder = build_kd_module(cfg, in_channels=in_channels, out_channels=out_channels)
    except (KeyError, TypeError) as err:
        raise ValueError(f"coder {cfg!r} cannot be built: {err}") from err
    if not isinstance(coder, nn.Module):
        raise ValueError(f"coder {cfg!r} built a {type(coder).__name__}, not an nn.Module")
    return coder


def encode_info(info: Mapping[str, Any]) -> Tensor:
    """``info`` (plain values) as a ``uint8`` tensor of its UTF-8 JSON text."""
    text = json.dumps(plain(info), sort_keys=True)
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.uint8)


def decode_info(data: Tensor) -> dict[str, Any]:
    """The dict :func:`encode_info` wrote, or a ``ValueError``."""
    try:
        info = json.loads(bytes(data.detach().cpu().to(torch.uint8).tolist()).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"not an auto-encoder description: {err}") from err
    if not isinstance(info, dict):
        raise ValueError(f"not an auto-encoder description: {info!r}")
    return info


@MODELS.register_module()
class FactorAutoEncoder(nn.Module):
    """An encoder ``C → F`` and a decoder ``F → C``: ``forward(x) -> (factor, reconstruction)``.

    Its ``state_dict`` carries, besides the weights, what the next stage needs to rebuild the
    encoder and to check that it fits a teacher layer: ``info``, a ``uint8`` buffer holding the
    JSON of the widths, the coder configs and the labels of the teacher layers it was trained on
    (:attr:`layers`). A tensor, not extra state: mmengine broadcasts every ``state_dict`` entry
    between the processes of a distributed run, and checkpoints load with ``weights_only``.
    Loading a state dict takes the saved ``info`` (whatever its length) after checking that its
    widths are this auto-encoder's.

    Args:
        in_channels: width ``C`` of the feature.
        factor_channels: width ``F`` of the factor, at most ``C``.
        encoder: coder config (``None``: :class:`FactorCoder`), built ``C → F``.
        decoder: coder config (``None``: :class:`FactorCoder`), built ``F → C``.
    """

    def __init__(
        self,
        in_channels: int,
        factor_channels: int,
        encoder: Mapping[str, Any] | None = None,
        decoder: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _check_width("FactorAutoEncoder", in_channels=in_channels, factor_channels=factor_channels)
        if factor_channels > in_channels:
            raise ValueError(
                f"FactorAutoEncoder: factor_channels {factor_channels} is larger than the "
                f"feature ({in_channels} channels); an auto-encoder compresses, choose "
                f"factor_channels <= {in_channels}"
            )
        self.in_channels = in_channels
        self.factor_channels = factor_channels
        self.encoder_cfg = plain(dict(type="FactorCoder") if encoder is None else encoder)
        self.decoder_cfg = plain(dict(type="FactorCoder") if decoder is None else decoder)
        self.encoder = build_coder(self.encoder_cfg, in_channels, factor_channels)
        self.decoder = build_coder(self.decoder_cfg, factor_channels, in_channels)
        self._layers: list[str] = []
        self.register_buffer("info", encode_info(self.describe()))

    @property
    def layers(self) -> list[str]:
        """Labels of the teacher layers this auto-encoder was trained on (set by its trainer)."""
        return list(self._layers)

    @layers.setter
    def layers(self, labels: list[str]) -> None:
        self._layers = [str(label) for label in labels]
        self.info = encode_info(self.describe()).to(self.info.device)

    def describe(self) -> dict[str, Any]:
        """What ``info`` holds: widths, coder configs, teacher layers."""
        return dict(
            in_channels=self.in_channels,
            factor_channels=self.factor_channels,
            encoder=copy.deepcopy(self.encoder_cfg),
            decoder=copy.deepcopy(self.decoder_cfg),
            layers=list(self._layers),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        factor = self.encoder(x)
        return factor, self.decoder(factor)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        saved = state_dict.get(prefix + "info")
        if saved is not None:
            info = decode_info(saved)
            widths = (info.get("in_channels"), info.get("factor_channels"))
            if widths != (self.in_channels, self.factor_channels):
                raise ValueError(
                    f"{prefix}info: the checkpoint's auto-encoder maps {widths[0]} -> "
                    f"{widths[1]} channels, this one {self.in_channels} -> {self.factor_channels}"
                )
            self._layers = [str(label) for label in info.get("layers", [])]
            self.info = saved.detach().clone().to(self.info.device)  # its length, for the copy
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.factor_channels}"


class FrozenModule(nn.Module):
    """``module`` fixed: its parameters turned into buffers, always in eval mode, no gradient.

    The weights stay in ``state_dict`` under the same names (so a distiller's checkpoint keeps
    them and a resumed run gets them back) but are no parameters: no optimizer, weight decay,
    gradient clipping or DDP reducer ever sees them. ``train()`` leaves the module in eval mode
    (BatchNorm keeps its running statistics), and ``forward`` runs under ``no_grad``.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        for sub in module.modules():
            for name, param in list(sub._parameters.items()):
                if param is None:  # e.g. a bias-free conv's bias: stays None
                    continue
                del sub._parameters[name]
                sub.register_buffer(name, param.detach().clone())
        self.module = module
        super().train(False)

    def train(self, mode: bool = True) -> FrozenModule:
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.module(x)
