"""The metrics sidecar: one pod's app metrics, enriched, plus the pod's process resource series.

On each `GET /metrics` it scrapes the app (and optionally the logging sidecar) synchronously and
answers the Prometheus text format 0.0.4, or OpenMetrics 1.0 when asked. Every sample gains
`service_name`, `environment` and `pod`; a label of one of those names the app already sets is kept,
and ours is exposed as `exported_<name>` (see `labels.py`). The sidecar's own series live under
`podvisor_` (`podvisor_target_*`, `podvisor_pod_*` for the app's process tree).

The app's metrics are read by an adapter (METRICS_ADAPTER): `prometheus` passes its exposition
through; `nginx` turns nginx's stub_status page into typed `nginx_*` families (see `nginx.py`).

Modules: settings (environment), scraper (fetching, target health), rewrite (the line-level label
injector), exposition (formats), nginx (the stub_status adapter), enricher (one scrape), process and
pids (the app's process tree), app (WSGI), main (process).
"""
