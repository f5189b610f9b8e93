"""The image pipeline every judge reads from: opening files safely (formats, pixel and resize bounds, from the
header), the judges' preprocessings to their originals' bit, decoding ahead of the model (threads, worker
processes), JPEG decoding on the GPU, and the prompts generators embed in their files. Imports no judge."""
