"""bench/time_to_quality.py's textbook loop is evaluated by vaelab's estimator in vaelab's VAE: that VAE must be
the textbook network, weight for weight, whatever activation the default config takes."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
from time_to_quality import Textbook  # noqa: E402
from vaelab.config import load_config  # noqa: E402


def test_the_textbook_weights_in_vaelab_s_vae_give_the_textbook_s_encoder_and_decoder_outputs():
    default = load_config(Path(__file__).parent.parent / "configs" / "vae-mlp.yaml")
    textbook = Textbook(torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8), seed=3)
    model = textbook.as_vaelab(default)
    x = torch.bernoulli(torch.rand(6, 784))
    z = torch.randn(6, 32)
    with torch.no_grad():
        ours = model.encoder_head(model.encoder(x.view(6, 1, 28, 28)))
        torch.testing.assert_close(ours, textbook.model.encoder(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(model.decoder(z).flatten(1), textbook.model.decoder(z), rtol=0, atol=1e-5)
