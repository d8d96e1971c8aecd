"""A user module with types: ``mypy --strict examples/typed_user.py`` passes, and mypy sees each
step as the function it is (the decorator returns it unchanged), so calling a step by hand is
checked like any call. ``tests/sdk/test_typing.py`` runs mypy on this file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import chronum

flow = chronum.Flow("typed", max_parallel=2)


@flow.step()
def numbers() -> list[int]:
    return [3, 1, 2]


@flow.step(retry=1, timeout=30)
def total(numbers: list[int]) -> int:
    return sum(numbers)


@flow.step
async def label(total: int, prefix: str = "total") -> str:
    return f"{prefix}={total}"


greeting = flow.shell("greet", "echo hello", needs=[label])

if TYPE_CHECKING:
    from typing import reveal_type

    reveal_type(numbers)
    reveal_type(total)
    reveal_type(label)
    reveal_type(greeting)
    reveal_type(flow.build())


def main() -> int:
    run = flow.run()
    run.raise_for_status()
    checked: int = total(numbers())  # the same functions, callable and checked by hand
    return checked


if __name__ == "__main__":
    print(main())
