#!/usr/bin/env python3
"""Recompute every stream's hash chain of a BetterWorld log from its NDJSON export, independently.

    betterworld events export | python3 scripts/verify-chains.py

A second implementation of the canonical form (docs/event-catalog.md, "Verifying a stream";
ADR 0007), in Python's standard library only, for auditors: it shares no code with the Rust
verifier. Prints one JSON line per finding and a summary; exits 1 on any finding.
"""

import datetime
import decimal
import hashlib
import json
import sys

FORM = "bw.event.v2"
SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def string(s):
    out = ['"']
    for c in s:
        if c in SHORT:
            out.append(SHORT[c])
        elif ord(c) < 0x20:
            out.append("\\u%04x" % ord(c))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def number(text):
    """The exact decimal value of a JSON number, in plain notation (no exponent, no padding)."""
    sign, digits, exponent = decimal.Decimal(text).as_tuple()
    digits = "".join(map(str, digits)).lstrip("0")
    if not digits:
        return "0"
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    if exponent >= 0:
        plain = digits + "0" * exponent
    elif len(digits) > -exponent:
        plain = digits[:exponent] + "." + digits[exponent:]
    else:
        plain = "0." + "0" * (-exponent - len(digits)) + digits
    return ("-" if sign else "") + plain


class Number(str):
    """A JSON number kept as its text."""


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("a key appears twice in one object")
    return dict(pairs)


def canonical(value):
    if isinstance(value, dict):
        return "{" + ",".join(string(k) + ":" + canonical(value[k]) for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, Number):
        return number(value)
    if isinstance(value, str):
        return string(value)
    return {True: "true", False: "false", None: "null"}[value]


def parse(text):
    return json.loads(text, parse_float=Number, parse_int=Number, object_pairs_hook=no_duplicates)


def micros(recorded_at):
    t = datetime.datetime.fromisoformat(recorded_at.replace("Z", "+00:00"))
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(e):
    head = [FORM, e["eventId"], e["aggregateType"], e["aggregateId"]]
    tail = [e["eventType"], e["eventVersion"], micros(e["recordedAt"])]
    return (
        "[" + ",".join(map(string, head)) + "," + str(int(e["sequence"])) + ","
        + ",".join(map(string, tail)) + ","
        + canonical(e["payload"]) + "," + canonical(e["metadata"]) + "]"
    ).encode("utf-8")


def main():
    events = [parse(line) for line in sys.stdin if line.strip()]
    events.sort(key=lambda e: (e["aggregateType"], e["aggregateId"], int(e["sequence"])))
    findings, streams, previous = 0, 0, None
    for e in events:
        stream = (e["aggregateType"], e["aggregateId"])
        if previous is None or previous[0] != stream:
            streams += 1
            expected, chained_from = 1, bytes(32)
        else:
            expected, chained_from = previous[1] + 1, previous[2]
        stored = bytes.fromhex(e["hash"])
        problem = None
        if int(e["sequence"]) != expected:
            problem = "removed: sequence %d expected" % expected
        elif hashlib.sha256(chained_from + canonical_bytes(e)).digest() != stored:
            problem = "altered: its content and its predecessor's hash do not give its hash"
        if problem:
            findings += 1
            print(json.dumps({"eventId": e["eventId"], "stream": "/".join(stream), "finding": problem}))
        previous = (stream, int(e["sequence"]), stored)
    print(json.dumps({"events": len(events), "streams": streams, "findings": findings}))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
