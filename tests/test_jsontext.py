"""The recorder's JSON writer (schema/jsontext.py) gives json's own text."""

from __future__ import annotations

import json
import random

import pytest
from sshrec.schema import jsontext

ALPHABET = "abc \"\\/\n\r\t\b\f\x00\x01\x1b\x7f\u00e9\u2028\u65e5\U0001f600"


def random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(12)))
    if kind == 1:
        return rng.randrange(-10**12, 10**12)
    if kind == 2:
        return rng.choice([0.0, -1.5, 1e-7, 123456.789, 1e300, rng.random()])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return ""
    if kind == 5:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{n}{rng.choice(ALPHABET)}": random_value(rng, depth + 1) for n in range(rng.randrange(4))}


@pytest.mark.parametrize("seed", range(200))
@pytest.mark.parametrize("indent", [None, 1])
def test_same_text_as_json(seed: int, indent: int | None) -> None:
    value = random_value(random.Random(seed))
    assert jsontext.dumps(value, indent=indent) == json.dumps(value, ensure_ascii=False, indent=indent)


def test_lone_surrogates_are_escaped_and_read_back() -> None:
    path = b"/srv/caf\xe9.txt".decode("utf-8", "surrogateescape")
    text = jsontext.dumps({"path": path})
    assert text == '{"path": "/srv/caf\\udce9.txt"}'
    assert json.loads(text.encode("utf-8")) == {"path": path}


def test_what_json_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError):
        jsontext.dumps(float("nan"))
    with pytest.raises(TypeError):
        jsontext.dumps({1, 2})
