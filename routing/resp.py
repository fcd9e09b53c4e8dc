"""The Redis wire protocol (RESP2) for the pipelined client: commands out, errors in."""

from __future__ import annotations

from collections.abc import Sequence

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import DataError, RedisError
from redis.typing import EncodableT


def pack_command(args: Sequence[EncodableT]) -> bytes:
    """`*N` then each argument as a bulk string, encoded as redis-py encodes them. A command
    name of several words ("SCRIPT LOAD", as redis-py passes it) is sent as several."""
    if isinstance(args[0], str) and " " in args[0]:
        args = [*args[0].split(), *args[1:]]
    try:  # hiredis' C encoder: str, bytes, int and float, as below, in a fraction of the time
        packed: bytes = hiredis.pack_command(tuple(args))  # type: ignore[arg-type]
        return packed
    except TypeError:
        return _pack_in_python(args)  # anything else: converted, or refused with redis-py's error


def _pack_in_python(args: Sequence[EncodableT]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, bool):  # before int: redis-py refuses booleans too
            raise DataError(f"Invalid input of type: 'bool'. Convert to a string first: {arg!r}")
        elif isinstance(arg, int):
            data = b"%d" % arg
        elif isinstance(arg, float):
            data = repr(arg).encode()
        elif isinstance(arg, memoryview | bytearray):
            data = bytes(arg)
        else:
            raise DataError(
                f"Invalid input of type: {type(arg).__name__!r}. "
                "Convert to a bytes, string, int or float first."
            )
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def parse_error(message: str) -> RedisError:
    """The redis-py exception for an error reply: NOSCRIPT → NoScriptError, and also those that
    are not ResponseErrors (LOADING → BusyLoadingError, NOAUTH → AuthenticationError, ...)."""
    error: RedisError = BaseParser.parse_error(message)  # type: ignore[no-untyped-call]
    return error
