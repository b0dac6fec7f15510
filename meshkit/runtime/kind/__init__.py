"""The kind runtime: the same mesh as real Kubernetes objects in a kind cluster.

`cluster_up` renders every manifest from the topology into a folder meshkit owns
(`<home>/kind/<name>/`, home `$MESHKIT_HOME`, else `~/.meshkit`), validates it offline, then drives
the `kind`, `docker` (or `podman`) and `kubectl` programs, one printed step at a time.

The parts, each importing only those before it:
- `config`: pins, names, ports, `cluster/kind.yaml`, state folders, `ClusterInfo` (forwards.json);
- `rendering`: the Kubernetes objects (`manifests`) and Envoy bootstraps of the cluster;
- `validation`: offline checks of a rendered folder (kubernetes-validate, bootstrap parsing);
- `plan`: the ordered steps of `cluster up`, each with its executor, and the preflight checks;
- `execution`: running those steps and the port-forwards; `cluster_up/down/status`.

Everything other modules use is re-exported here, so `from meshkit.runtime.kind import X` works.
"""

from .config import (
    ADMIN_PORT,
    CLUSTER_DIR,
    CONTROL_NAME,
    CONTROL_PORT,
    ENVOY_IMAGE,
    IMAGE_REGISTRY,
    IMAGE_TAG,
    IMAGES,
    IMAGES_DIR,
    KIND_CONFIG,
    KIND_MIN_VERSION,
    PORT_BASE,
    REPO,
    SYSTEM_NAMESPACE,
    VIP_CIDR_NAME,
    XDS_HOST_OFFSET,
    XDS_NAME,
    XDS_PORT,
    ClusterInfo,
    Forward,
    KindConfig,
    engine,
    forwards,
    home,
    host_arch,
    image_ref,
    kind_config_problems,
    state_dir,
)
from .execution import (
    FORWARD_READY_S,
    StepRunner,
    cluster_down,
    cluster_status,
    cluster_up,
    is_forward,
    run,
    start_forward,
    stop_forwards,
)
from .plan import (
    CREATE_WAIT,
    ENGINE_FIX,
    ROLLOUT_TIMEOUT_S,
    Plan,
    Step,
    StepContext,
    engine_problem,
    format_plan,
    preflight,
    run_each,
)
from .rendering import (
    APPS_DIR,
    BOOTSTRAP_DIR,
    BOOTSTRAP_FILE,
    CAPTURE_ARGS,
    INIT_SCRIPT_PATH,
    MANAGED_BY,
    PROMETHEUS_PORT,
    XDS_COMMAND,
    app_command,
    check_vips,
    control_plane_objects,
    deployments,
    kind_topology,
    manifests,
    node_overrides,
    render,
    service_objects,
    vip_cidr_object,
    workload_objects,
)
from .validation import parse_bootstrap, validate

__all__ = [
    "ADMIN_PORT", "APPS_DIR", "BOOTSTRAP_DIR", "BOOTSTRAP_FILE", "CAPTURE_ARGS", "CLUSTER_DIR", "CONTROL_NAME",
    "CONTROL_PORT", "CREATE_WAIT", "ENGINE_FIX", "ENVOY_IMAGE", "FORWARD_READY_S", "IMAGES", "IMAGES_DIR",
    "IMAGE_REGISTRY", "IMAGE_TAG", "INIT_SCRIPT_PATH", "KIND_CONFIG", "KIND_MIN_VERSION", "MANAGED_BY",
    "PORT_BASE", "PROMETHEUS_PORT", "REPO", "ROLLOUT_TIMEOUT_S", "SYSTEM_NAMESPACE", "VIP_CIDR_NAME",
    "XDS_COMMAND", "XDS_HOST_OFFSET", "XDS_NAME", "XDS_PORT",
    "ClusterInfo", "Forward", "KindConfig", "Plan", "Step", "StepContext", "StepRunner",
    "app_command", "check_vips", "cluster_down", "cluster_status", "cluster_up", "control_plane_objects",
    "deployments", "engine", "engine_problem", "format_plan", "forwards", "home", "host_arch", "image_ref",
    "is_forward", "kind_config_problems", "kind_topology", "manifests", "node_overrides", "parse_bootstrap",
    "preflight", "render", "run", "run_each", "service_objects", "start_forward", "state_dir", "stop_forwards",
    "validate", "vip_cidr_object", "workload_objects",
]
