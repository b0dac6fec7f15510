"""Reading the lieutenant: what an Envoy actually holds, shown the way istioctl shows it.

Everything here works on Envoy's own admin JSON (never on the control plane's memory), which
the runtime fetches (`runtime/admin.py`'s AdminClient: inspect, runtime and xds never import
each other):

- `proxy_config.listeners|routes|clusters|endpoints(...)` build istioctl's tables as
  DataFrames, `proxy_config.resources(...)` its `-o json` view, `render(df)` its text;
- `secrets.secrets(dump)` is `istioctl pc secret`; `stats.requests(...)` the request counters
  by source, destination and response code;
- `dump.versions(dump)` lists what version each resource runs and what Envoy rejected;
- `sync_status.status_table(rows)` is `istioctl proxy-status`.
"""

from __future__ import annotations

from . import dump, proxy_config, secrets, stats, sync_status
from .tables import render

__all__ = ["dump", "proxy_config", "render", "secrets", "stats", "sync_status"]
