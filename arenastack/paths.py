"""Where the repository keeps what the renderer reads: templates, image contexts, model catalog."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"
IMAGES = REPO / "images"
MODEL_CATALOG = REPO / "compose" / "model-info"
# The model architectures of each recorded vLLM version (tools/vllm_registry.py writes them).
VLLM_REGISTRY = REPO / "compose" / "vllm-registry"
MANIFEST_SCHEMA = REPO / "compose" / "manifest.schema.json"
README = REPO / "README.md"
