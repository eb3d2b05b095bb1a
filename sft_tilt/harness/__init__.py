"""Real-LM harness: fine-tune a pretrained LM on a domain, measure domain gain and general loss."""
