"""The typed boundary between config values and the files and commands halb writes.

Every value from the config reaches haproxy.cfg, keepalived.conf, a shell script or a firewall
rule as one of these, and nothing else:

- an **haproxy word**: printable ASCII with no space, `#` (comment), quote, backslash, `$`
  (variables in double quotes) or brace (anonymous ACLs), so it is one token wherever it stands,
  also inside a double-quoted string;
- a **keepalived word**: printable ASCII with no space, `#` or `!` (comments), `"`, braces,
  `$` (parameters) or backslash (continuation); no value starts a line, where `@` and `~` would
  mean more;
- a **shell word**: a number, or text quoted with `shlex.quote` (NUL refused);
- an **address**: an `ipaddress` object (or network) without an IPv6 zone (`%scope`), printed in
  its canonical form, which holds only hex digits, dots, colons and `/`.

The same checks serve twice: at config time as the field types below (pydantic reports the key,
the value and what is expected), and at render time as the templates' `finalize`, which refuses
anything not already in one of these shapes, so a value that slipped past the model (a new
field, a model built in code) still cannot become a directive. Text that halb composes itself
from checked words is a `Directive`.
"""

from __future__ import annotations

import re
import shlex
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Annotated, Any

from pydantic import AfterValidator, IPvAnyAddress, IPvAnyNetwork

HAPROXY_WORD = re.compile(r"[!%&(-\[\]^_`a-z|~]+")  # printable ASCII less space " # $ ' \ { }
KEEPALIVED_WORD = re.compile(r"[%&'(-\[\]^_`a-z|~]+")  # printable ASCII less space ! " # $ \ { }
HAPROXY_HINT = "printable ASCII without spaces, quotes, backslashes or any of # $ { }"
KEEPALIVED_HINT = "printable ASCII without spaces, quotes, backslashes or any of # ! $ { }"


class UnsafeValue(ValueError):
    """A value that cannot be written to its target as one token. The message never holds the
    value (it may be a secret): its length and the first character that is not allowed."""

    def __init__(self, target: str, value: object, expected: str) -> None:
        self.target, self.expected = target, expected
        text = str(value)
        bad = next((i for i, c in enumerate(text) if not (c.isascii() and c.isprintable()) or c in " \"#$'{}!"), None)
        where = f", character {bad + 1} of {len(text)}" if bad is not None else f", {len(text)} characters"
        super().__init__(f"a value that is not one {target} token{where}; expected {expected}")


class Directive(str):
    """Text halb composed from checked words and its own keywords: written as it is."""

    __slots__ = ()


def haproxy_word(value: object) -> str:
    text = _text(value, "haproxy")
    if not HAPROXY_WORD.fullmatch(text):
        raise UnsafeValue("haproxy", text, HAPROXY_HINT)
    return text


def keepalived_word(value: object) -> str:
    text = _text(value, "keepalived")
    if not KEEPALIVED_WORD.fullmatch(text):
        raise UnsafeValue("keepalived", text, KEEPALIVED_HINT)
    return text


def shell_word(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Address | Network):
        raise UnsafeValue("shell", value, "a number, an address or text")
    if isinstance(value, int | float):
        return str(value)
    text = address(value) if isinstance(value, Address | Network) else value
    if "\0" in text:
        raise UnsafeValue("shell", text, "text without NUL")
    return shlex.quote(text)


Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


def address(value: object) -> str:
    """An address or network in canonical form; an IPv6 zone is refused."""
    if not isinstance(value, Address | Network):
        raise UnsafeValue("address", value, "an IPv4 or IPv6 address or network")
    scope = value.scope_id if isinstance(value, IPv6Address) else None
    if isinstance(value, IPv6Network):
        scope = value.network_address.scope_id
    if scope is not None:
        raise UnsafeValue("address", value, "an address without an IPv6 zone (%...)")
    return str(value)


firewall_address = address  # a firewall rule's source: the same canonical, zone-free form


def _text(value: object, target: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Address | Network):
        return address(value)
    if isinstance(value, str):
        return value
    raise UnsafeValue(target, type(value).__name__, "text, a number or an address")


def finalizer(word: Any) -> Any:
    """A Jinja `finalize` for one target: every `{{ ... }}` must be a Directive, a number, an
    address or a word of the target (None and "" print nothing)."""

    def finalize(value: object) -> object:
        if isinstance(value, Directive) or value is None or value == "":
            return value
        if isinstance(value, bool):
            raise UnsafeValue("template", value, "no boolean in a rendered file (a template bug)")
        if isinstance(value, int | float):
            return value
        if isinstance(value, Address | Network):
            return address(value)
        return word(value)

    return finalize


# --------------------------------------------------------------------------- field types


def _no_zone(value: Any) -> Any:
    address(value)  # raises for a zone
    return value


def _checked(word: Any) -> Any:
    def check(value: str) -> str:
        try:
            return str(word(value))
        except UnsafeValue as e:
            raise ValueError(e.expected) from None

    return check


# Addresses and networks as the model takes them: never with an IPv6 zone (`fe80::1%eth0`).
IPv6Addr = Annotated[IPv6Address, AfterValidator(_no_zone)]
IPv6Net = Annotated[IPv6Network, AfterValidator(_no_zone)]
AnyAddr = Annotated[IPvAnyAddress, AfterValidator(_no_zone)]
AnyNet = Annotated[IPvAnyNetwork, AfterValidator(_no_zone)]
# Text that lands in haproxy.cfg / keepalived.conf: one token there, checked again when rendered.
HaproxyWord = Annotated[str, AfterValidator(_checked(haproxy_word))]
KeepalivedWord = Annotated[str, AfterValidator(_checked(keepalived_word))]
