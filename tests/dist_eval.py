"""Run under `torchrun --nproc_per_node=2` (or alone): WER/CER by generation on the sample eval
set with the tiny model, plain or FSDP-wrapped; rank 0 writes the metrics and hypotheses as JSON.

    torchrun --standalone --nproc_per_node=2 tests/dist_eval.py OUT.json [--fsdp]
"""

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import compose_config  # noqa: E402
from voxtral_exp.data.featurize import Featurizer  # noqa: E402
from voxtral_exp.data.manifest import read_manifest  # noqa: E402
from voxtral_exp.model.modeling import build_model  # noqa: E402
from voxtral_exp.model.processor import build_offline_processor  # noqa: E402
from voxtral_exp.training.evaluation import evaluate_wer  # noqa: E402


def main() -> None:
    out, fsdp = Path(sys.argv[1]), "--fsdp" in sys.argv
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    cfg = compose_config(["model=tiny", "hardware=cpu", "evaluation.max_new_tokens=6", "evaluation.batch_size=2"])
    model = build_model(cfg.model, torch.float32, seed=0)
    if fsdp:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy
        from transformers.models.llama.modeling_llama import LlamaDecoderLayer
        from transformers.models.voxtral.modeling_voxtral import VoxtralEncoderLayer

        model = FSDP(
            model,
            auto_wrap_policy=ModuleWrapPolicy({LlamaDecoderLayer, VoxtralEncoderLayer}),
            use_orig_params=True,
            device_id=torch.device("cpu"),
        )
    examples, _ = read_manifest(ROOT / "data" / "sample" / "eval.jsonl")  # 9 clips: shares of 5 and 4
    metrics, predictions = evaluate_wer(
        model, Featurizer(build_offline_processor(), "offline"), examples, cfg.evaluation
    )
    if not dist.is_initialized() or dist.get_rank() == 0:
        out.write_text(json.dumps({"metrics": metrics, "hypotheses": [p["hypothesis"] for p in predictions]}))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
