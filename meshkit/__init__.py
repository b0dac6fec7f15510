"""meshkit: a live Envoy + xDS mesh to learn from."""
