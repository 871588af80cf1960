"""Flask as every podvisor Flask app (the demo apps, the aggregator) answers HTTP's odd corners."""
from __future__ import annotations

from flask import Flask, Response


class PodvisorFlask(Flask):
    """Flask whose automatic OPTIONS answer is a deliberate 204 with `Allow` (Flask's own is an
    empty text/html 200). Unknown paths stay the app's JSON 404, whatever the method."""

    def make_default_options_response(self) -> Response:
        response = super().make_default_options_response()
        response.status_code = 204
        response.headers.pop("Content-Type", None)
        return response
