"""GPUs of a host from nvidia-smi's CSV output; no nvidia-smi means no GPU, not an error."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass, field

GPU_FIELDS = "index,name,uuid,memory.used,memory.total,utilization.gpu"
APP_FIELDS = "gpu_uuid,pid,used_memory"


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    memory_mib: int | None


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    uuid: str
    memory_used_mib: int | None
    memory_total_mib: int | None
    utilization_pct: int | None
    processes: tuple[GpuProcess, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> Gpu:
        procs = tuple(GpuProcess(**p) for p in doc.get("processes") or ())
        return cls(**{**doc, "processes": procs})


def query_gpus(nvidia_smi: str = "nvidia-smi", timeout: float = 10.0) -> list[Gpu]:
    """GPUs with their memory, utilisation and compute processes; [] without nvidia-smi."""
    exe = shutil.which(nvidia_smi)
    if exe is None:
        return []
    try:
        gpus = subprocess.run(
            [exe, f"--query-gpu={GPU_FIELDS}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        apps = subprocess.run(
            [exe, f"--query-compute-apps={APP_FIELDS}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if gpus.returncode != 0:
        return []  # e.g. the driver is not loaded: no usable GPU
    return parse_gpus(gpus.stdout, apps.stdout if apps.returncode == 0 else "")


def parse_gpus(gpu_csv: str, apps_csv: str = "") -> list[Gpu]:
    """Parse `--query-gpu` and `--query-compute-apps` CSV (noheader, nounits)."""
    by_uuid: dict[str, list[GpuProcess]] = {}
    for row in _rows(apps_csv, 3):
        by_uuid.setdefault(row[0], []).append(GpuProcess(int(row[1]), _int(row[2])))
    result = []
    for row in _rows(gpu_csv, 6):
        result.append(
            Gpu(
                index=int(row[0]),
                name=row[1],
                uuid=row[2],
                memory_used_mib=_int(row[3]),
                memory_total_mib=_int(row[4]),
                utilization_pct=_int(row[5]),
                processes=tuple(by_uuid.get(row[2], ())),
            )
        )
    return result


def _rows(text: str, width: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) == width and cells[0] and cells[0][0].isalnum():
            rows.append(cells)
    return rows


def _int(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"
