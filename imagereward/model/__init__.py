"""ImageReward's network and how it is built and loaded: the typed config, the network (BLIP's ViT, BLIP's BERT
with cross-attention, the head), BLIP's tokenizer, checkpoint reading and strict loading, the registry of
published weights, CPU kernels and CUDA graphs; and the TorchScript reader CLIP's weights need. Imports nothing
of the image pipeline or the judges."""
