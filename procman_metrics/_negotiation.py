"""Content negotiation for /metrics: the format from Accept, gzip from Accept-Encoding."""

from __future__ import annotations

import logging

from prometheus_client.exposition import choose_encoder, generate_latest

from procman_metrics.collector import Encoder, LogLimiter

__all__ = ["gzip_accepted", "negotiate_format"]

# Only these media types, versions and escapings are passed on to
# prometheus_client, rebuilt from these constants (never from client text).
_MEDIA_VERSIONS: dict[str, tuple[str, ...]] = {
    "application/openmetrics-text": ("0.0.1", "1.0.0"),
    "text/plain": ("0.0.4", "1.0.0"),
}
_ESCAPINGS = ("allow-utf-8", "underscores", "dots", "values")
_TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


def _canonical_accept(header: str) -> tuple[str, bool]:
    """The usable media ranges of ``header`` rebuilt from constants; and whether any was not."""
    ranges: list[str] = []
    unusable = False
    for part in header.split(",")[:32]:
        media, *params = part.split(";")
        versions = _MEDIA_VERSIONS.get(media.strip().lower())
        if versions is None:  # */* and anything else: the text format in the end
            continue
        media = media.strip().lower()
        words = [media]
        for param in params:
            key, _, value = param.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "version":
                known = next((v for v in versions if v == value), None)
                if known is None:
                    unusable = True
                    break
                words.append(f"version={known}")
            elif key == "escaping":
                escaping = next((e for e in _ESCAPINGS if e == value), None)
                if escaping is not None:
                    words.append(f"escaping={escaping}")
            elif key == "q" and value.rstrip("0").rstrip(".") in ("0", ""):
                break  # q=0: not acceptable
        else:
            ranges.append("; ".join(words))
    return ",".join(ranges), unusable


def negotiate_format(accept: str, log: LogLimiter) -> tuple[Encoder, str]:
    """The encoder and Content-Type for ``accept``: text format for anything not usable."""
    canonical, unusable = _canonical_accept(accept)
    if unusable:
        log.log(
            logging.INFO,
            "accept",
            "procman metrics server: a client sent an Accept header it cannot use; "
            "answered in the text format",
        )
    try:
        encoder, content_type = choose_encoder(canonical)
    except Exception:  # a prometheus_client that rejects what it was given
        return generate_latest, _TEXT_FORMAT
    if not isinstance(content_type, str) or not content_type.isprintable():
        return generate_latest, _TEXT_FORMAT
    return encoder, content_type


def gzip_accepted(accept_encoding: str) -> bool:
    """``Accept-Encoding`` allows gzip (``gzip`` or ``*`` listed without ``q=0``)."""
    for part in accept_encoding.split(",")[:32]:
        coding, *params = part.split(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q" and value.strip().rstrip("0").rstrip(".") in ("0", ""):
                break
        else:
            return True
    return False
