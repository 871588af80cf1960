#!/bin/sh
# An app podvisor did not write: Python's stock http.server, serving the www/ folder beside this
# script on the port podvisor gives it. It writes no JSON (its access lines go to stderr) and
# serves no /metrics; www/health makes GET /health answer 200 for the readiness probe.
cd "$(dirname "$0")/www" || exit 1
exec python3 -m http.server "$APP_PORT" --bind "$APP_HOST"
