"""OpenAI's ViT-L/14 file at full size with seeded random weights, in its real format (a TorchScript archive of a
traced `clip.model.CLIP`, weights converted by `clip.model.convert_weights`, with the int64 buffers
`input_resolution`, `context_length`, `vocab_size`), as the original's `clip.load` reads it. Run with the
reference env's Python (which has OpenAI's `clip`):

    $REFENV/bin/python benchmarks/_make_clip_archive.py OUT/ViT-L-14.pt
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "reference"))
import _refcommon  # noqa: E402  (makes torchvision importable beside the CPU torch, as the harness does)

_refcommon.ensure_torchvision_importable()
import clip.model as cm  # noqa: E402
import torch  # noqa: E402


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    model = cm.CLIP(768, 224, 24, 1024, 14, 77, 49408, 768, 12, 12).eval()
    cm.convert_weights(model)
    for name, value in (("input_resolution", 224), ("context_length", 77), ("vocab_size", 49408)):
        if hasattr(model, name):
            delattr(model, name)
        model.register_buffer(name, torch.tensor(value))
    image = torch.randn(1, 3, 224, 224).half()
    text = torch.zeros(1, 77, dtype=torch.long)
    text[0, :3] = torch.tensor([49406, 320, 49407])
    with torch.no_grad():
        traced = torch.jit.trace_module(
            model, {"forward": (image, text), "encode_image": (image,), "encode_text": (text,)}, check_trace=False
        )
    torch.jit.save(traced, out + ".tmp")
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
