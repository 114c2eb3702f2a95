"""What every config model shares: camelCase keys, unknown keys refused, secrets kept opaque,
and patterned strings whose errors show an example rather than a regex."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict


@dataclass(frozen=True)
class Secret:
    """A secret config value. `value` is None when it is still encrypted
    (`{secure: v1:...}` read straight from a stack file by `halb check`)."""

    value: str | None

    def __repr__(self) -> str:
        return "Secret(<set>)" if self.value is not None else "Secret(<encrypted>)"

    __str__ = __repr__


def _to_secret(v: Any) -> Any:
    if isinstance(v, Secret):
        return v
    if isinstance(v, str):
        return Secret(v)
    if isinstance(v, dict) and set(v) == {"secure"} and isinstance(v["secure"], str):
        return Secret(None)
    raise ValueError("expected a string, set with `pulumi config set --secret`")


SecretValue = Annotated[
    Secret,
    BeforeValidator(_to_secret),
    PlainSerializer(lambda s: "<secret>", return_type=str),
]


class Model(BaseModel):
    """Base: camelCase keys only (a field's Python name, e.g. `auth_password`, is an unknown key), unknown
    keys are errors, values are frozen."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,  # one spelling per key: the documented camelCase one
        extra="forbid",
        frozen=True,
        arbitrary_types_allowed=True,
        allow_inf_nan=False,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """`true` is not 1: a boolean where a number is due is refused (pydantic would take it)."""
        if isinstance(value, bool) and info.field_name is not None:
            types = leaves(cls.model_fields[info.field_name].annotation)
            if bool not in types and any(leaf in (int, float) for leaf in types):
                raise ValueError("a number, not a boolean (true/false)")
        return value


def leaves(annotation: Any) -> list[Any]:
    """The plain types inside an annotation: `Annotated[int, ...] | None` -> [int, NoneType]."""
    if get_origin(annotation) is Annotated:
        return leaves(get_args(annotation)[0])
    args = get_args(annotation)
    return [leaf for a in args for leaf in leaves(a)] if args else [annotation]


def is_secret(annotation: Any) -> bool:
    """Whether a field holds a secret: its annotation is `SecretValue` (the one declaration)."""
    return Secret in leaves(annotation)


def secret_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every secret key under `model`, as a config path; `[]` stands for any list index
    (`haproxy.services[].tls.key`)."""
    out: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{field.alias or name}"
        listed = any(get_origin(a) is list for a in (field.annotation, *get_args(field.annotation)))
        if is_secret(field.annotation):
            out.append(path)
        for leaf in leaves(field.annotation):
            if isinstance(leaf, type) and issubclass(leaf, BaseModel):
                out += secret_paths(leaf, f"{path}[]." if listed else f"{path}.")
    return out


Port = Annotated[int, Field(ge=1, le=65535)]

# Characters that are never part of a value: C0/C1 controls (newline, carriage return, tab, NUL...),
# format characters (zero-width, bidi overrides) and the Unicode line and paragraph separators.
CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def patterned(pattern: str, hint: str, example: str, **kwargs: Any) -> Any:
    """A string field checked against `pattern`; its error says `hint` and shows `example`."""
    extra: JsonDict = {"hint": hint}
    return Field(pattern=pattern, examples=[example], json_schema_extra=extra, **kwargs)


NAME_RE = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
# A URL path as haproxy takes it unquoted: no '#' (comment), quotes, backslash, spaces or controls.
PATH_RE = r"^/[A-Za-z0-9._~%/?=&+:@,-]{0,255}$"
PATH_HINT = "a URL path starting with '/', of letters, digits and any of . _ ~ % / ? = & + : @ , -"
NAME_HINT = "2-32 lowercase letters, digits and '-', starting with a letter"
INTERFACE_RE = r"^[A-Za-z0-9_.:-]{1,15}$"
INTERFACE_HINT = "a network interface name: 1-15 letters, digits, '_', '.', ':' or '-'"
