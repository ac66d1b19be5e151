"""A tiny name -> builder registry, so models and datasets are built by name, never by if/elif."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from pipeline.errors import UserError

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Builders filled by a decorator; an unknown name raises a :class:`UserError` listing the valid ones.

    Example::

        TEACHERS = Registry("teacher")

        @TEACHERS.register("r3d_18")
        def r3d_18(...): ...

        TEACHERS.get("r3d_18")
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def add(builder: T) -> T:
            key = name or builder.__name__
            if key in self._builders:
                raise KeyError(f"{self.kind} {key!r} is registered twice")
            self._builders[key] = builder
            return builder

        return add

    def get(self, name: str) -> T:
        try:
            return self._builders[name]
        except KeyError:
            raise UserError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders
