"""The opt-in metrics stack: Prometheus scraping every model server's `/metrics`, Grafana with a
dashboard per GPU and model, both configured as data from the plan.

Prometheus scrapes every model server's `/metrics` every 5 s. Each target carries the labels
`service`, `display_name`, `gpu` and `fraction`; a recording rule per model turns the memory it
was given (its --gpu-memory-utilization, or its CPU KV-cache space) into a series the dashboard
can draw next to its load. Metric names follow the vLLM version the image runs
(plan.vllm_metrics).

May import: arenastack.core, arenastack.manifest, arenastack.plan
"""
