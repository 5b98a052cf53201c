"""The manifest's building blocks: the base of every block, the scalar types (each with one clear
message), the patterns names must match, and the default images and vLLM version."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

# A compose service name that is also a DNS label, so services reach each other by name.
SERVICE_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Hugging Face hub ids: `org/name` or a bare legacy name such as `gpt2`.
HUB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
LOCAL_PATH_PREFIXES = ("/", "./", "../", "~")
# An experiment names a folder on the logs volume: no path separators, no leading dot.
EXPERIMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"

# The newest vLLM release that builds with the CUDA 12.3 toolkit of the NGC PyTorch 24.01 image
# and serves the seed's five models: v0.8.3 dropped the DeciLM-7B implementation (vLLM #15008).
# The compatibility matrix in docs/images.md says more.
DEFAULT_VLLM_REF = "v0.8.2"
# A release tag, as PyPI names the version: v0.8.2, v0.6.3.post1.
RELEASE_REF = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+(\.post[0-9]+)?$")
DEFAULT_CUDA_BASE_IMAGE = "nvcr.io/nvidia/pytorch:24.01-py3"
DEFAULT_SLIM_BASE_IMAGE = "python:3.11-slim-bookworm"


class Strict(BaseModel):
    """Every block's base: an unknown key is an error (a typo must not fall back to a default),
    values are not coerced, and a validated manifest does not change."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- scalar types with one clear message each (a plain union would report every branch) ---------


def _fraction_or_auto(value: object) -> float | str:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is neither a fraction in (0, 1) nor 'auto'")
    if not 0 < value < 1:
        raise ValueError(
            f"{value} is outside (0, 1): it is the share of the GPU's total memory vLLM may use"
        )
    return float(value)


FractionOrAuto = Annotated[
    float | str,
    PlainValidator(_fraction_or_auto),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                {"const": "auto"},
            ]
        }
    ),
]


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _gpu_selection(value: object) -> int | tuple[int, ...] | str:
    if value == "auto":
        return "auto"
    if _is_index(value):
        assert isinstance(value, int)
        return value
    if isinstance(value, list) and value and all(_is_index(i) for i in value):
        return tuple(value)
    raise ValueError(
        f"{value!r} is not a GPU index, a non-empty list of indices (tensor parallel) or 'auto'"
    )


GpuSelection = Annotated[
    int | tuple[int, ...] | str,
    PlainValidator(_gpu_selection),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
                {"const": "auto"},
            ]
        }
    ),
]

Port = Annotated[int, Field(ge=1, le=65535)]
PositiveInt = Annotated[int, Field(gt=0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
