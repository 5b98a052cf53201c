"""What a vLLM instance takes of a GPU beyond the fraction it is given.

The checks (a warning when a GPU is nearly full) and the planner (how much room is left for one
more server) both bound the fractions on a GPU with this.
"""

# What one vLLM instance holds on its GPU outside its own fraction: its CUDA context, created
# before vLLM takes its memory snapshot. A later instance on the same GPU finds it already taken
# when it checks free memory ≥ total × fraction at start-up. Measured 0.61 GiB (torch 2.11,
# CUDA 13.0, driver 580, H100; tests/gpu); the allowance leaves room for other stacks.
CUDA_CONTEXT_GIB = 0.75


def safe_fraction_total(servers: int, gpu_memory_gib: float) -> float:
    """The most the fractions on one GPU may add up to so that the last of `servers` chained
    instances still passes vLLM's start-up check (free ≥ total × fraction)."""
    return 1.0 - (servers - 1) * CUDA_CONTEXT_GIB / gpu_memory_gib
