"""Copies of arenastack/ modules, by tools/sync_fastchat_modules.py: do not edit."""
