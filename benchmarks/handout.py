"""The handout's Task 5 code, copied verbatim as the benchmarks' baseline.

Only change: ``visualize_filter`` takes ``seed`` and ``image_size`` (the handout
hard-codes an unseeded 224x224 start), so its result can be compared with the
reference's.
"""

# ruff: noqa: E501, B007  (verbatim handout code: long signature, unused loop variable)
import numpy as np
import torch


def postprocess_filter(img_tensor: torch.Tensor):
    """Helper function for post-processing and display."""
    img = img_tensor.squeeze(0).cpu().detach().numpy()
    img = np.transpose(img, (1, 2, 0))
    # Normalize to [0, 1] for display
    img = (img - img.min()) / (img.max() - img.min())
    return img


def visualize_filter(model, layer: str, filter_index: int, iterations: int = 50, lr: float = 0.1, *, seed: int | None = None, image_size: int = 224) -> np.ndarray:
    """Generates an image that maximally activates a specified filter."""
    if seed is not None:  # added: seeded start
        torch.manual_seed(seed)
    # Start with a random noise image (our canvas)
    image = torch.randn(1, 3, image_size, image_size, requires_grad=True)
    optimizer = torch.optim.Adam([image], lr=lr, weight_decay=1e-6)

    # We need to hook into the model to capture the output of our target layer
    activation = None
    def hook(model, input, output):
        nonlocal activation
        activation = output

    handle = layer.register_forward_hook(hook)

    print(f"Computing Filter #{filter_index} of layer {layer.__class__.__name__}...")
    for i in range(iterations):
        optimizer.zero_grad()
        # Forward pass to get the activation
        model(image)
        # Our "loss" is the negative of the mean activation of the chosen filter.
        # We negate it because optimizers minimize, but we want to maximize.
        loss = -torch.mean(activation[0, filter_index])
        loss.backward()
        optimizer.step()

    handle.remove() # Clean up the hook
    return postprocess_filter(image)
