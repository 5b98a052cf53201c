"""Running the stack: `render.py up` and its live view (`live_view`), `render.py status`
(`stack_status`), what the running containers look like (`stack_state`), why a model failed
(`diagnosis`), which models the gateway reaches (`gateway_health`), and the leaderboard of the
running stack's votes (`leaderboard_cli`).

May import: arenastack.core, arenastack.manifest, arenastack.plan, arenastack.arena,
arenastack.gateway, arenastack.monitoring, arenastack.render
"""
