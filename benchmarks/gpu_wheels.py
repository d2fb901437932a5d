"""Download the wheels `gpu_check.py` needs on a GPU machine that has torch but not this project's
other dependencies, and cannot reach the internet: autoprune's pins for Python 3.12 on x86-64 Linux,
their dependencies, minus what that machine's image already holds (``--have``, a comma-separated list
of distribution names; by default the list its documentation gives).

    python benchmarks/gpu_wheels.py .whl          # about 40 MB; then, on the GPU machine:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:. python3 benchmarks/gpu_check.py --out "$OUT"
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PINS = ["mlflow==3.17.2", "optuna==5.0.0", "pydantic==2.14.3", "typer==0.29.2", "rich==15.0.0"]
NO_DEPS = ["torch-pruning==1.6.1"]  # its one dependency is torch, which the machine has (with CUDA)
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"]
HAVE = (
    "click,cloudpickle,contourpy,cycler,filelock,fonttools,fsspec,h11,httpcore,httpx,idna,jinja2,joblib,"
    "kiwisolver,markdown,markdown-it-py,markupsafe,matplotlib,mdurl,networkx,numpy,onnx,onnx-ir,onnxruntime,"
    "onnxscript,packaging,pandas,pillow,protobuf,psutil,pyarrow,pygments,pyparsing,python-dateutil,pyyaml,"
    "requests,scikit-learn,scipy,setuptools,shellingham,six,sympy,threadpoolctl,torch,tqdm,typing-extensions,"
    "urllib3,werkzeug,zipp,anyio,certifi,charset-normalizer,mpmath,ml-dtypes,rich,typer,annotated-doc"
)


def _name(wheel: str) -> str:
    return re.split(r"-\d", wheel, maxsplit=1)[0].lower().replace("_", "-")


def download(folder: Path, have: set[str]) -> list[Path]:
    """The wheels in ``folder`` after downloading the pins and dropping what the machine has."""
    folder.mkdir(parents=True, exist_ok=True)
    common = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "-q"]
    common += [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    with tempfile.TemporaryDirectory() as staging:
        pip = [sys.executable, "-m", "pip", "download", *common, "-d", staging]
        subprocess.run([*pip, *PINS], check=True)
        subprocess.run([*pip, "--no-deps", *NO_DEPS], check=True)
        for wheel in Path(staging).glob("*.whl"):
            if _name(wheel.name) not in have or _name(wheel.name) in {"rich", "typer"}:  # the pins' versions
                wheel.replace(folder / wheel.name)
    return sorted(folder.glob("*.whl"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--have", default=HAVE, help="distributions the GPU machine has already")
    args = parser.parse_args()
    wheels = download(args.folder, {name.strip().lower() for name in args.have.split(",")})
    size = sum(wheel.stat().st_size for wheel in wheels) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
