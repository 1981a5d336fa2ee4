"""The redactor masks every registered secret that occurs in a text, and only those."""

from __future__ import annotations

import secrets

from tootcheck.redaction import MASK, Redactor


def test_only_registered_values_of_six_or_more_characters_are_masked() -> None:
    redactor = Redactor()
    redactor.register("abc12")  # too short: would mask ordinary words
    redactor.register("tok-123456")
    assert redactor.redact("abc12 tok-123456 tok-12345") == f"abc12 {MASK} tok-12345"
    assert redactor.redact("nothing here") == "nothing here"


def test_a_secret_inside_another_masks_the_longer_one_whole() -> None:
    redactor = Redactor()
    inner, outer = "s3cr3t-value", "prefix-s3cr3t-value-suffix"
    redactor.register(inner)
    redactor.register(outer)
    assert redactor.redact(f"a={outer} b={inner}") == f"a={MASK} b={MASK}"


def test_many_registered_values_and_special_characters() -> None:
    redactor = Redactor()
    values = [secrets.token_urlsafe(18) for _ in range(300)] + ["a.b*c+d?(e)[f]", "line1\nline2"]
    for value in values:
        redactor.register(value)
    text = f"x {values[7]} y {values[-2]} z {values[-1]} w a.bxc+d"
    assert redactor.redact(text) == f"x {MASK} y {MASK} z {MASK} w a.bxc+d"
