"""Download the wheels benchmarks/gpu.py needs on the GPU machine into .whl/ (run it here).

    .venv/bin/python benchmarks/gpu_wheels.py

The GPU image has torch, torchaudio, transformers (an older 5.x), peft, accelerate, numpy,
pyarrow, pandas and tokenizers, but no network: everything else voxtral_exp imports travels as
wheels for its Python (3.12), at the versions this project's .venv uses. A package published
only as a source archive (antlr4-python3-runtime) is built into a wheel here.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [  # voxtral_exp's imports the image lacks, and theirs
    "hydra-core",
    "omegaconf",
    "antlr4-python3-runtime",
    "datasets",
    "dill",
    "multiprocess",
    "soundfile",
    "cffi",
    "pycparser",
    "pycountry",
    "mistral-common",
    "pydantic",
    "pydantic-core",
    "pydantic-extra-types",
    "annotated-types",
    "typing-inspection",
    "jsonschema",
    "jsonschema-specifications",
    "referencing",
    "rpds-py",
    "jiwer",
    "rapidfuzz",
    "transformers",
    "peft",
]
EXTRA = ["liger-kernel", "cut-cross-entropy"]  # the axolotl-style baseline's fused losses (newest)
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]


def main() -> None:
    out = ROOT / ".whl"
    out.mkdir(exist_ok=True)
    pins = [f"{name}=={metadata.version(name)}" for name in PACKAGES] + EXTRA
    for pin in pins:
        download = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            "-d",
            str(out),
            pin,
        ]
        for platform in PLATFORMS:
            download += ["--platform", platform]
        if subprocess.run(download).returncode != 0:  # no wheel published: build one (pure Python)
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), pin], check=True)
    wheels = sorted(out.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wheels)} wheels, {size:.0f} MiB in {out} (carry it: the device call's `carry` names .whl)")


if __name__ == "__main__":
    main()
