"""Render a model manifest into a docker-compose stack (or a Kubernetes folder) and operate it.

Each subpackage owns one concern and says in its docstring which others it may import; the
command line (`cli`) sits on top of them all. tests/unit/test_layers.py holds the code to it.
"""
