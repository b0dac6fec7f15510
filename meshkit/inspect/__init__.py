"""Reading the lieutenant: what an Envoy actually holds, shown the way istioctl shows it.

Everything here works on Envoy's own admin JSON (never on the control plane's memory):

- `AdminClient(connect)` fetches `/config_dump`, `/clusters`, `/stats`, `/server_info`;
- `proxy_config.listeners|routes|clusters|endpoints(...)` build istioctl's tables as
  DataFrames, `proxy_config.resources(...)` its `-o json` view, `render(df)` its text;
- `secrets.secrets(dump)` is `istioctl pc secret`; `stats.requests(...)` the request counters
  by source, destination and response code;
- `dump.versions(dump)` lists what version each resource runs and what Envoy rejected;
- `sync_status.status_table(rows)` is `istioctl proxy-status`.
"""

from __future__ import annotations

from . import dump, proxy_config, secrets, stats, sync_status
from .admin import AdminClient, AdminError
from .tables import render

__all__ = ["AdminClient", "AdminError", "dump", "proxy_config", "render", "secrets", "stats", "sync_status"]
