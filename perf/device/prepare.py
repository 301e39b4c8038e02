"""Prepare `.device/` for the GPU check: the wheels the GPU machine lacks, this project's
own wheel, and the shared metallicity file, within the 64 MiB a device call may carry.

    python perf/device/prepare.py            # then, on the device: bash perf/device/run.sh

Which wheels: the top-level modules a tiny run of `check.py` imports here (its
metallicity stage, in this process), mapped to their distributions, less those the GPU
machine's image already has (`DEVICE_HAS`, from the device notes' package list) and the
standard library. Each is downloaded at the version installed here (what the tests ran
with) for CPython 3.12 on manylinux x86_64, without dependencies (the list is complete
by construction). Needs PyPI (pip) and the shared data.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 64 << 20  # what one device call carries: the working tree and the carried paths
DATA_NAME = "mp_metallicity_36k.csv.gz"

# The GPU machine's Python packages (device notes, KINDS.md: image 'cuda', read 2026-11-17).
DEVICE_HAS = set(
    """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx
onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split()
)  # noqa: SIM905 - the notes' list as printed there
PROJECT = {"harness"}  # this project: its own wheel is built, not downloaded
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def needed(data: Path) -> dict[str, str]:
    """{distribution: version here} of the modules a tiny metallicity run imports,
    less what the GPU machine has."""
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "modules.txt"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "perf/device/check.py"),
                "--device",
                "cpu",
                "--tiny",
                "--data",
                str(data),
                "--skip",
                "perf",
                "determinism",
                "--record-modules",
                str(record),
            ],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "HARNESS_CACHE_DIR": str(Path(tmp) / "cache")},
        )  # featurise: no cache
        modules = record.read_text().split()
    owners = md.packages_distributions()
    dists = {canonical(d) for m in modules for d in owners.get(m, [])}
    keep = sorted(dists - {canonical(d) for d in DEVICE_HAS} - PROJECT)
    return {d: md.version(d) for d in keep}


def download(dists: dict[str, str], folder: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        "-d",
        str(folder),
    ]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + [f"{d}=={v}" for d, v in sorted(dists.items())], check=True)


def tree_bytes() -> int:
    """What travels besides the carried paths: tracked and untracked-not-ignored files."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sum((ROOT / f).stat().st_size for f in out.split("\0") if f and (ROOT / f).is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", default=str(ROOT.parent / "shared" / "data" / DATA_NAME), help="the shared metallicity file"
    )
    ap.add_argument("--out", default=str(ROOT / ".device"), help="the folder to carry (git-ignored)")
    args = ap.parse_args()
    data, out = Path(args.data), Path(args.out)
    if not data.is_file():
        print(f"error: no data file at {data}; pass --data PATH/{DATA_NAME}", file=sys.stderr)
        return 2
    if out.exists():
        shutil.rmtree(out)
    (out / "whl").mkdir(parents=True)
    (out / "data").mkdir()
    dists = needed(data)
    print("wheels the GPU machine lacks: " + ", ".join(f"{d}=={v}" for d, v in dists.items()))
    download(dists, out / "whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out / "whl"), str(ROOT)], check=True
    )
    shutil.copy2(data, out / "data" / DATA_NAME)
    for f in sorted(out.rglob("*")):
        if f.is_file():
            print(f"{f.stat().st_size / 2**20:8.2f} MiB  {f.relative_to(out)}")
    carried = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    total = carried + tree_bytes()
    print(f"carried {carried / 2**20:.1f} MiB + working tree = {total / 2**20:.1f} MiB of {LIMIT >> 20} MiB")
    if total > LIMIT:
        print("error: over what one device call carries; drop wheels or data", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
