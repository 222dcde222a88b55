# The peer on the GPU host: PyTorch + transformers, eager (no torch.compile) float16 greedy `generate`
# on random weights of real shapes, batch 1/16/64. Decode tokens/s per row and in aggregate, from the
# difference of two generations (1 and 1 + NEW new tokens), so prefill is left out, as in Versa's bench.
# usage: python3 torch-baseline.py  (prints one JSON object per line)
import json
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

NEW = 128
PROMPT = 16
SHAPES = {
    "gpt2-small": lambda: GPT2LMHeadModel(GPT2Config()),
    "tinyllama-1.1b": lambda: LlamaForCausalLM(
        LlamaConfig(
            hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
            num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048,
        )
    ),
}


def timed(model, ids, new):
    torch.cuda.synchronize()
    t = time.perf_counter()
    model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
    torch.cuda.synchronize()
    return time.perf_counter() - t


torch.manual_seed(0)
for name, make in SHAPES.items():
    with torch.device("cuda"):
        model = make().to(torch.float16).eval()
    for batch in (1, 16, 64):
        ids = torch.randint(1, 1000, (batch, PROMPT), device="cuda")
        timed(model, ids, 8)  # warm-up
        one = min(timed(model, ids, 1) for _ in range(2))
        full = min(timed(model, ids, 1 + NEW) for _ in range(2))
        step = (full - one) / NEW
        print(json.dumps({
            "peer": "torch-eager-fp16", "shape": name, "batch": batch, "ms_per_step": round(step * 1e3, 3),
            "tokens_per_s_per_row": round(1 / step, 1), "tokens_per_s": round(batch / step, 1),
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name(),
        }), flush=True)
    del model
    torch.cuda.empty_cache()
