"""The memory planner and what it knows of vLLM: the GPU inventory (`inventory`), each model's
shape and weights (`modelinfo`), how a vLLM version spends GPU memory (`memory`), the plan
itself (`planner`, `sharing`, `report`), the checks across models (`checks`), and, per vLLM
version, its flags (`dialect`), its model registry (`registry`) and its metric names
(`vllm_metrics`).

May import: arenastack.core, arenastack.manifest
"""
