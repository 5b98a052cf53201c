"""Where the repository keeps what the renderer reads: templates, image contexts, model catalog."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"
IMAGES = REPO / "images"
MODEL_CATALOG = REPO / "compose" / "model-info"
MANIFEST_SCHEMA = REPO / "compose" / "manifest.schema.json"
README = REPO / "README.md"
