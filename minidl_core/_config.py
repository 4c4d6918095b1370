"""Constructor-argument introspection shared by layers and losses."""

from __future__ import annotations

import inspect
from typing import Any, Self

__all__ = ["Configurable"]

_SKIPPED = frozenset({"self", "input_layer"})


class Configurable:
    """Gives ``get_config``/``from_config`` to classes that keep their options.

    The convention: every constructor argument is stored on the instance
    under its own name (``self.alpha = alpha``). ``get_config`` then reads
    them back, so a plugin author writes no serialization code. A class that
    stores an option differently overrides :meth:`get_config`.
    """

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this object.

        Raises:
            NotImplementedError: A constructor argument is not stored as an
                attribute of the same name; override ``get_config``.
        """
        config: dict[str, Any] = {}
        signature = inspect.signature(type(self).__init__)
        for param in signature.parameters.values():
            if param.name in _SKIPPED or param.kind in (
                param.VAR_POSITIONAL,
                param.VAR_KEYWORD,
            ):
                continue
            if not hasattr(self, param.name):
                raise NotImplementedError(
                    f"{type(self).__name__}.get_config: constructor argument "
                    f"{param.name!r} is not stored as self.{param.name}; store "
                    "it or override get_config()"
                )
            config[param.name] = _plain(getattr(self, param.name))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """Rebuild an object from :meth:`get_config`'s output.

        Raises:
            TypeError: ``config`` has an option the constructor does not take,
                or lacks a required one; the message names it.
        """
        signature = inspect.signature(cls.__init__)
        params = signature.parameters
        takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        unknown = sorted(set(config) - set(params) - _SKIPPED)
        if unknown and not takes_any:
            known = sorted(set(params) - _SKIPPED)
            raise TypeError(
                f"{cls.__name__}: unknown option(s) {', '.join(unknown)}; "
                f"it takes {', '.join(known) or 'no option'}"
            )
        missing = [
            name
            for name, p in params.items()
            if name not in _SKIPPED
            and p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and name not in config
        ]
        if missing:
            raise TypeError(
                f"{cls.__name__}: missing required option(s) {', '.join(missing)}"
            )
        return cls(**config)


def _plain(value: Any) -> Any:
    """Tuples become lists so a config survives a JSON round trip equal."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
