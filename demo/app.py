"""Main job (interim): a smoke run of the embedded default models on the photos bundled with scikit-image.

Run: ``python -m demo.app`` (or ``make demo``). Loads the embedded LLM and vision encoder, prints the top ImageNet
class of each bundled photo and the LLM's reply to a short taste prompt. Becomes the Gradio app when it lands.
"""

from __future__ import annotations

import time


def main() -> None:
    import torch
    from PIL import Image
    from skimage import data

    from piaa.models import create_llm, create_vision_encoder

    t0 = time.time()
    model, tok = create_llm()
    enc = create_vision_encoder()
    print(f"loaded embedded models in {time.time() - t0:.1f} s")
    photos = {name: Image.fromarray(getattr(data, name)()) for name in ("chelsea", "coffee", "astronaut", "rocket")}
    with torch.no_grad():
        logits = enc.classify(enc.preprocess(list(photos.values())))
    for name, row in zip(photos, logits.softmax(-1)):
        p, k = row.max(0)
        print(f"{name:10s} ImageNet class {int(k):4d} (p={float(p):.2f})")
    msgs = [{"role": "user", "content": "In one sentence: what makes a photo of a cat pleasing?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=40, do_sample=False)
    print("LLM:", tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip())


if __name__ == "__main__":
    main()
