"""Copied from the repository's arenastack/ by tools/sync_fastchat_modules.py: do not edit."""
