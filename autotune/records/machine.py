"""The machine a measurement was made on: what decides whether two timings are comparable."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class GPU:
    name: str
    memory_bytes: int


@dataclass(frozen=True)
class Machine:
    """Identity fields decide whether two timings are comparable; versions are recorded but not identity."""

    cpu_model: str
    usable_cores: int  # sched_getaffinity: what this process may run on, not what the box has
    ram_bytes: int
    gpus: tuple[GPU, ...]
    hostname: str
    versions: dict[str, str] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        return {
            "cpu_model": self.cpu_model,
            "usable_cores": self.usable_cores,
            "ram_gib": round(self.ram_bytes / 2**30),  # rounded: the kernel reserves a varying slice
            "gpus": [(g.name, round(g.memory_bytes / 2**30)) for g in self.gpus],
        }

    def identity_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def summary(self) -> str:
        gpu = ", ".join(f"{g.name} {g.memory_bytes / 2**30:.0f} GiB" for g in self.gpus) or "no GPU"
        return f"{self.cpu_model}, {self.usable_cores} cores, {self.ram_bytes / 2**30:.0f} GiB RAM, {gpu}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["gpus"] = [asdict(g) for g in self.gpus]  # lists, as JSON gives them back
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Machine:
        return cls(
            cpu_model=d["cpu_model"],
            usable_cores=d["usable_cores"],
            ram_bytes=d["ram_bytes"],
            gpus=tuple(GPU(**g) for g in d.get("gpus", ())),
            hostname=d.get("hostname", ""),
            versions=dict(d.get("versions", {})),
        )
