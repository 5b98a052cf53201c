"""The two render targets: the path a manifest takes (`pipeline`: load, inventory, plan, check),
what both targets build from the plan (`stack`: commands, environments, start order; `images`;
the generated files `endpoints` and `arena_json`; the scripts `fetch_models` and `k8s_pod` that
run in containers), the compose document (`compose`, `templates`) and the Kubernetes folder
(`kubernetes`).

May import: arenastack.core, arenastack.manifest, arenastack.plan, arenastack.arena,
arenastack.gateway, arenastack.monitoring
"""
