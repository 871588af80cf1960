"""Exposition formats: content negotiation, enrichment of a fetched body, encoding, assembly.

The sidecar answers the Prometheus text format 0.0.4, or OpenMetrics 1.0 when the client's Accept
header names `application/openmetrics-text` (the rule prometheus_client itself follows). Upstreams
are asked for the same format, so the line rewriter does the work; only an upstream that ignores
our Accept header goes through prometheus_client's parser and encoder to change format.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import exposition as text_exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from .labels import PodLabels
from .rewrite import Keep, rewrite


@dataclass(frozen=True)
class Format:
    """One exposition format: what we answer with and what we ask upstreams for."""

    name: str
    content_type: str
    accept: str
    openmetrics: bool


TEXT = Format(
    name="text",
    content_type="text/plain; version=0.0.4; charset=utf-8",
    accept="text/plain;version=0.0.4;q=1.0,*/*;q=0.1",
    openmetrics=False,
)
OPENMETRICS = Format(
    name="openmetrics",
    content_type="application/openmetrics-text; version=1.0.0; charset=utf-8",
    accept="application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    openmetrics=True,
)
EOF = "# EOF\n"


def negotiate(accept: str | None) -> Format:
    """OpenMetrics when the Accept header names it (with a non-zero q), else text 0.0.4."""
    for item in (accept or "").split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() != "application/openmetrics-text":
            continue
        if _quality(params) > 0:
            return OPENMETRICS
    return TEXT


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def format_of(content_type: str | None) -> Format:
    """The format of an upstream answer, from its Content-Type (text 0.0.4 when unsure)."""
    media = (content_type or "").split(";")[0].strip().lower()
    return OPENMETRICS if media == "application/openmetrics-text" else TEXT


def merge(texts: list[str]) -> str:
    """One exposition from several of the same app (its replicas), each already enriched: a family
    must be one block in both formats, so each family's metadata lines come once (the first
    replica's) and its samples from every replica follow. `texts` are rewrite()'s or encode()'s
    output: metadata lines are `# KIND name ...`, no other comments, no `# EOF`."""
    if len(texts) < 2:
        return "".join(texts)
    families: dict[str, tuple[list[str], list[str]]] = {}
    for text in texts:
        current = None
        for line in text.split("\n"):  # not splitlines(): label values may hold U+2028 and the like
            if not line:
                continue
            if line[0] == "#":  # "# HELP name ...", "# TYPE name type", "# UNIT name unit"
                _hash, kind, name, *_rest = line.split(" ", 3)
                meta = families.setdefault(name, ([], []))[0]
                if not any(existing.split(" ", 2)[1] == kind for existing in meta):
                    meta.append(line)
                current = name
                continue
            end = len(line)
            for stop in ("{", " "):
                at = line.find(stop)
                if 0 <= at < end:
                    end = at
            sample = line[:end]
            if current is None or not (sample == current or sample.startswith(current + "_")):
                current = sample  # a sample without metadata is a family of its own (untyped)
            families.setdefault(current, ([], []))[1].append(line)
    return "".join("\n".join(meta + samples) + "\n" for meta, samples in families.values())


def enrich(body: str, body_format: Format, out: Format, labels: PodLabels, keep: Keep | None = None) -> str:
    """Return `body` with the pod labels added, in format `out`, without `# EOF`.

    Raises ValueError (RewriteError is one) when the body is not valid exposition.
    """
    if body_format.openmetrics == out.openmetrics:
        return rewrite(body, labels, openmetrics=out.openmetrics, keep=keep)
    return _convert(body, body_format, out, labels, keep)


class FamilyList:
    """A collector over an already built list of families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def _convert(body: str, body_format: Format, out: Format, labels: PodLabels, keep: Keep | None) -> str:
    """Slow path for an upstream that ignored our Accept header: parse, relabel, encode."""
    parse = parse_openmetrics if body_format.openmetrics else parse_text
    families = []
    for family in parse(body):
        if keep is not None and not keep(family.name):
            continue
        relabelled = Metric(family.name, family.documentation, family.type, family.unit)
        for sample in family.samples:
            # Exemplars do not exist in the text format; timestamps are dropped as in rewrite().
            exemplar = sample.exemplar if out.openmetrics else None
            relabelled.samples.append(
                sample._replace(labels=labels.merged_into(sample.labels), timestamp=None, exemplar=exemplar)
            )
        families.append(relabelled)
    if out.openmetrics:
        families = _fold_created(families)
    return encode(FamilyList(families), out)


def _fold_created(families: list[Metric]) -> list[Metric]:
    """Text format writes a counter's `_created` as a gauge family of its own; OpenMetrics
    reserves that name for the counter (histogram, summary) itself, so move the samples there."""
    by_name = {family.name: family for family in families}
    kept, owners = [], []
    for family in families:
        owner = by_name.get(family.name[: -len("_created")]) if family.name.endswith("_created") else None
        if family.type == "gauge" and owner is not None and owner.type in ("counter", "histogram", "summary"):
            owner.samples.extend(family.samples)
            owners.append(owner)
        else:
            kept.append(family)
    for owner in owners:
        owner.samples[:] = _grouped(owner.samples)
    return kept


def _grouped(samples: list[Sample]) -> list[Sample]:
    """The samples of each label set together, in order of first appearance (OpenMetrics refuses
    `x_total{a} x_total{b} x_created{a}`: a label set's samples must not be interleaved)."""
    order: dict[tuple, int] = {}

    def group(sample: Sample) -> int:
        key = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("le", "quantile")))
        return order.setdefault(key, len(order))

    return sorted(samples, key=group)  # stable: a group keeps its own order (buckets by le, then count, sum)


def encode(collector: Collector, out: Format) -> str:
    """Encode a collector's families in format `out`, without `# EOF`."""
    if out.openmetrics:
        text = om_exposition.generate_latest(collector).decode("utf-8")
        return text[: -len(EOF)] if text.endswith(EOF) else text
    return text_exposition.generate_latest(collector).decode("utf-8")


def assemble(parts: list[str], out: Format) -> bytes:
    """Join enriched parts into one answer, terminated by `# EOF` for OpenMetrics."""
    body = "".join(parts)
    if out.openmetrics:
        body += EOF
    return body.encode("utf-8")
