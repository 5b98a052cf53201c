"""Render a model manifest into a docker-compose stack."""
