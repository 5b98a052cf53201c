"""Where the repository keeps what the renderer reads: templates, image contexts, model catalog.

They live beside the package in a checkout of the repository, not inside it: the rendered
compose file names the image folders as build contexts, so they must be real folders the user
has. arenastack therefore runs from a checkout (`pip install -e .`), not from a wheel.
"""

from pathlib import Path

# arenastack/core/paths.py: the checkout is two folders up.
REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "templates"
IMAGES = REPO / "images"
MODEL_CATALOG = REPO / "compose" / "model-info"
# The model architectures of each recorded vLLM version (tools/vllm_registry.py writes them).
VLLM_REGISTRY = REPO / "compose" / "vllm-registry"
MANIFEST_SCHEMA = REPO / "compose" / "manifest.schema.json"
# `render.py schema` writes the manifest reference between its markers in this page.
MANIFEST_REFERENCE = REPO / "docs" / "manifest.md"

INSTALL_HINT = (
    "arenastack runs from a checkout of its repository: it reads templates/, images/ and "
    "compose/model-info/ beside the package, and the compose files it writes build images from "
    "images/. Clone the repository and run `pip install -e .` (or tools/bootstrap) there."
)


def missing_from_checkout() -> list[Path]:
    return [path for path in (TEMPLATES, IMAGES, MODEL_CATALOG) if not path.is_dir()]
