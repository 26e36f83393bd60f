"""Configured engine name (and Ray address) -> Engine."""

from __future__ import annotations

from agent.batch.local import LocalEngine
from agent.batch.protocol import ENGINES, Engine
from agent.errors import ConfigError


def make_engine(name: str = "local", address: str | None = None) -> Engine:
    """"local": this process. "ray": Ray Data on a local Ray instance started on first use
    (address None) or on the cluster at `address` ("auto", "ray://host:port")."""
    if name == "local":
        if address is not None:
            raise ConfigError(f"a Ray address ('{address}') needs the ray engine, not 'local'")
        return LocalEngine()
    if name == "ray":
        from agent.batch.raydata import RayEngine  # imports Ray, or says how to install it

        return RayEngine(address)
    raise ConfigError(f"unknown engine '{name}'; known: {', '.join(ENGINES)}")
