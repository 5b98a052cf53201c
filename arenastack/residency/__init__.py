"""The residency service: an OpenAI-compatible proxy in front of the vLLM servers of a stack
that keeps at most `awake_per_gpu` models of each GPU awake and the others asleep (vLLM's sleep
mode), waking a model when a request asks for it. Its config (`config`), the policy of who
sleeps and who may wake (`policy`, pure), vLLM's sleep-mode calls (`sleep_mode`), the waiting,
wakes and sleeps that carry the policy out (`control`), its metrics (`metrics`) and the HTTP
service (`service`); the command is `python -m arenastack.residency --config FILE`.

Not yet wired into the rendered stack. It is meant to run in the FastChat image, so its imports
stay to the standard library, starlette 0.38, uvicorn, httpx, anyio and prometheus_client, and
of arenastack.core to `problems` (which the image's .dockerignore will have to let through).

May import: arenastack.core
"""
