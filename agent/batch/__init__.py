"""The pool-wide work (embedding, scoring) on an engine: this process, or Ray Data.

`make_engine("ray")` imports Ray then, never before; the local engine needs nothing.
"""

from agent.batch.factory import make_engine
from agent.batch.local import LocalEngine
from agent.batch.protocol import ENGINES, Engine

__all__ = ["ENGINES", "Engine", "LocalEngine", "make_engine"]
