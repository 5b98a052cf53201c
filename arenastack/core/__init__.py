"""What every other package uses: where the checkout keeps its files (`paths`), problems tied
to a manifest field (`problems`), all YAML in and out (`serialize`), the stack's own services and
their ports (`services`), and atomic output (`files`).

The FastChat image carries `files` for the arena package; nothing here imports more than the
standard library and PyYAML.

May import: nothing
"""
