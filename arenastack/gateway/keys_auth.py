"""Per-user keys for the LiteLLM gateway, without a database.

This file runs inside the gateway container: compose mounts it beside the generated config, and
the config names it as LiteLLM's `custom_auth` (`general_settings.custom_auth`). LiteLLM then
calls `user_api_key_auth` for every authenticated request instead of its own key check, so this
accepts the master key (LITELLM_MASTER_KEY) and every key of the keys file (`{user: key}`,
mounted read-only). The file is read again when it changes: users are added without a restart.
A wrong or missing key is answered with 401.

It imports LiteLLM and FastAPI only when called, so the renderer's tests can import it.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Any

import yaml

KEYS_FILE = Path(os.environ.get("ARENASTACK_GATEWAY_KEYS", "/etc/arenastack/gateway/keys.yaml"))
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
REFUSAL = "invalid or missing API key: send the gateway's master key or a user key"

_cache: dict[str, Any] = {"stamp": None, "users": {}}


def users_by_key(path: Path = KEYS_FILE) -> dict[str, str]:
    """key → user name, from the keys file; re-read when its size or time changes."""
    try:
        stat = path.stat()
    except OSError:
        return {}
    stamp = (stat.st_mtime_ns, stat.st_size)
    if _cache["stamp"] != stamp:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        found = {}
        if isinstance(data, dict):
            found = {
                str(key): str(user) for user, key in data.items() if isinstance(key, str) and key
            }
        _cache["stamp"], _cache["users"] = stamp, found
    users: dict[str, str] = _cache["users"]
    return users


def who(api_key: str, master_key: str | None, users: dict[str, str]) -> tuple[str, bool] | None:
    """(user, is the master key) for a key, or None. Constant-time comparisons."""
    api_key = api_key.removeprefix("Bearer ").strip()
    if not api_key:
        return None
    if master_key and hmac.compare_digest(api_key.encode(), master_key.strip().encode()):
        return ("admin", True)
    found = None
    for key, user in users.items():
        if hmac.compare_digest(api_key.encode(), key.encode()):
            found = (user, False)
    return found


async def user_api_key_auth(request: Any, api_key: str) -> Any:
    from fastapi import HTTPException
    from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth

    found = who(api_key or "", os.environ.get(MASTER_KEY_ENV), users_by_key())
    if found is None:
        # An HTTPException becomes LiteLLM's 401 answer; any other exception sends LiteLLM down a
        # database-error check that needs prisma, which the image does not have (a 500).
        raise HTTPException(status_code=401, detail=REFUSAL)

    user, admin = found
    role = LitellmUserRoles.PROXY_ADMIN if admin else LitellmUserRoles.INTERNAL_USER
    return UserAPIKeyAuth(user_id=user, user_role=role)
