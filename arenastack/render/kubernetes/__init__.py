"""Render the stack for Kubernetes: a kustomization folder, one file per resource.

The same manifest, plan and checks as the compose file (`pipeline.prepare`), plus the checks only
a cluster needs (`checks`). Every command and environment comes from
`render.stack`, as on Compose, so both targets run the same flags and the same start order on a
shared GPU. Values are prepared here and laid out by `templates/k8s/*.yaml.j2`, every one
through `tojson`; the fragments are parsed back, stripped of unset (null) keys and dumped once
per file.

The gateway and the metrics services, where the manifest enables them, are the Compose target's:
the same LiteLLM config, key check, Prometheus config and rules, Grafana provisioning and
dashboard (`arenastack.gateway`, `arenastack.monitoring`), mounted from ConfigMaps. Models are
reached by their Service's name, which is their host name on Compose too. No secret is
rendered: the master key and Grafana's password come from `kubernetes.secret` and the per-user
keys from the Secret `gateway-keys`, all created by the user and referenced by name.

GPU sharing (`kubernetes.gpu_sharing`):
- `whole`: each model requests `nvidia.com/gpu` = its tensor-parallel size, and keeps its
  fraction of the card; models may not share a GPU index.
- `hami`: each model requests `nvidia.com/gpu` = tp and `nvidia.com/gpumem` = fraction × the
  GPU's memory in MiB (a plain integer: HAMi reads `16Gi` as 0). HAMi-core's libvgpu reports
  the slice as the device's total memory to CUDA (`cuMemGetInfo_v2`) and NVML
  (`nvmlDeviceGetMemoryInfo`), and charges the container's CUDA context to it, so vLLM's
  `--gpu-memory-utilization` applies to the slice; it is set to the part of the slice left after
  the CUDA context."""

from arenastack.render.kubernetes.checks import prepare, warnings
from arenastack.render.kubernetes.images import images_pulled
from arenastack.render.kubernetes.output import MARKER, write_directory
from arenastack.render.kubernetes.resources import build

__all__ = ["MARKER", "build", "images_pulled", "prepare", "warnings", "write_directory"]
