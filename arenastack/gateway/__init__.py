"""The gateway: one OpenAI-compatible endpoint over every model of the experiment (a LiteLLM
proxy), its generated config, the per-user key check that runs inside it, and the checks of its
manifest block.

May import: arenastack.core, arenastack.manifest
"""
