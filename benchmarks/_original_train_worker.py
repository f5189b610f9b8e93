"""Times the ORIGINAL reward-model training code (`train/src` of THUDM/ImageReward, as `bench_train.py` extracts
it) on a batch of pairs; run with the reference env's Python (this package's torch linked first on PYTHONPATH by the
caller, so that both sides run the same torch).

    $REFENV/bin/python benchmarks/_original_train_worker.py --src DIR --config config.yaml --preload ImageReward.pt \
        --vocab bert-base-uncased-vocab.txt --pairs pairs.json --steps 4 --batch 8 --threads 2

Its own modules run unmodified but for what the parity fixture's harness also changed from outside
(tests/fixtures/train/README.md): `tensorboardX` (not installed) is a stub, and `BertTokenizer.from_pretrained
('bert-base-uncased')` reads the vocab file given (offline). The steps follow `train.py`'s `__main__`: the model
`ImageReward(device)`, `preload_model`, Adam over every parameter, then per step `model.train()`,
`model(batch)`, `loss_func`, `backward`, `optimizer.step()`, `zero_grad()`; the pairs' images preprocessed by the
original's own transform and tokenized by its tokenizer once, as its pair store holds them. Prints one JSON
object: the step times and the peak resident memory (VmHWM).
"""

import argparse
import json
import os
import sys
import time
import types

from _original_refl_worker import peak_mb  # the script's folder is on the path


def main():
    ap = argparse.ArgumentParser()
    for name in ("--src", "--config", "--preload", "--vocab", "--pairs"):
        ap.add_argument(name, required=True)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import torch
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers.generation.utils  # noqa: F401 - before the stub: transformers probes for tensorboardX
    import transformers.modeling_utils  # noqa: F401

    stub = types.ModuleType("tensorboardX")
    stub.SummaryWriter = lambda *a, **k: types.SimpleNamespace(add_scalar=lambda *a, **k: None)
    sys.modules["tensorboardX"] = stub
    vocab = args.vocab
    original_from_pretrained = transformers.BertTokenizer.from_pretrained

    def from_pretrained(name, *a, **k):
        if name == "bert-base-uncased":
            return transformers.BertTokenizer(vocab_file=vocab)
        return original_from_pretrained(name, *a, **k)

    transformers.BertTokenizer.from_pretrained = from_pretrained
    pairs = json.load(open(args.pairs))
    sys.argv = ["train.py", "--config", os.path.abspath(args.config), "--batch_size", str(args.batch)]
    sys.argv += ["--accumulation_steps", "1", "--fix_rate", "0.7", "--lr", "1e-5", "--rank_pair"]
    sys.argv += ["--preload_path", os.path.abspath(args.preload)]
    os.chdir(args.src)
    sys.path.insert(0, args.src)
    from config.utils import preload_model
    from ImageReward import ImageReward, _transform
    from PIL import Image
    from rank_pair_dataset import init_tokenizer
    from train import init_seeds, loss_func

    init_seeds(1234)
    device = torch.device(args.device)  # train.py: CUDA when there is one
    model = ImageReward(device).to(device)
    model = preload_model(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8)
    preprocess, tokenizer = _transform(224), init_tokenizer()
    batches = []
    for start in range(0, len(pairs), args.batch):
        chunk = pairs[start : start + args.batch]
        tokens = tokenizer(
            [p[0] for p in chunk], padding="max_length", truncation=True, max_length=35, return_tensors="pt"
        )
        batches.append(
            {
                "text_ids": tokens.input_ids,
                "text_mask": tokens.attention_mask,
                "img_better": torch.stack([preprocess(Image.open(p[1])) for p in chunk]),
                "img_worse": torch.stack([preprocess(Image.open(p[2])) for p in chunk]),
            }
        )
    times = []
    for step in range(args.steps):
        start = time.perf_counter()
        model.train()
        reward = model({k: v.to(device) for k, v in batches[step % len(batches)].items()})
        loss, loss_list, acc = loss_func(reward)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    print(json.dumps({"step_seconds": times, "peak_rss_mb": peak_mb(), "peak_gpu_mb": gpu, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
