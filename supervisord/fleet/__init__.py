"""podvisor past one machine: the fleet's TLS material, ingest endpoint and Prometheus files."""
