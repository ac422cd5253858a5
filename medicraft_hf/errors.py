"""Errors that front ends put in their own words.

The library names a bad argument by its Python name (`num_inference_steps`); the CLI says
`--steps`, the Space says "Steps". `ArgumentError` carries the name and a message with
the marker `{argument}` where the name goes, so each front end renames it in one place.
Imports nothing heavy: the CLI maps errors before torch is loaded.
"""

from __future__ import annotations


class ArgumentError(ValueError):
    """A bad value for one argument of a library call."""

    def __init__(self, argument: str, template: str):
        self.argument, self.template = argument, template
        super().__init__(self.say(argument))

    def say(self, name: str) -> str:
        """The message with the argument called `name` (a flag, a field label)."""
        return self.template.replace("{argument}", name)


def check_positive_int(argument: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(argument, f"{{argument}} must be a positive integer, got {value!r}.")
    return value


def check_non_negative_int(argument: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgumentError(argument, f"{{argument}} must be a non-negative integer, got {value!r}.")
    return value


def in_own_words(err: BaseException, names: dict[str, str]) -> str:
    """`str(err)`, with the argument named as this front end names it."""
    if isinstance(err, ArgumentError) and err.argument in names:
        return err.say(names[err.argument])
    return str(err)


class RunError(RuntimeError):
    """A job that could not finish for a reason outside its arguments: a push that failed, a
    run folder found corrupt. The CLI prints it on one line and exits with 1 (bad input: 2)."""
