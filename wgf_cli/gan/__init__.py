"""GAN and Wasserstein-GAN training dynamics on toy distributions.

Plain PyTorch (POT / GeomLoss for optimal transport), no CLI or config code:

- :mod:`~wgf_cli.gan.data`: the toy distributions (WGAN-GP's ``ring8``/``grid25``/``swissroll``,
  the PacGAN protocol's ``ring8_pacgan``/``grid25_pacgan``, a 1-D two-Gaussian mixture) with
  their mode centres and standard deviation;
- :mod:`~wgf_cli.gan.models`: MLP generator and critic;
- :mod:`~wgf_cli.gan.losses`: minimax / non-saturating GAN, WGAN with clipping, WGAN-GP
  (per-sample gradient penalty), and the critic-free debiased Sinkhorn loss;
- :mod:`~wgf_cli.gan.trainer`: the alternating training loop (n_critic, WGAN warm-up, generator
  weight averages);
- :mod:`~wgf_cli.gan.protocol`: one seed of the protocol (networks, training, evaluation
  rows, dynamics flags) from a plain config, and the statistics over seeds;
- :mod:`~wgf_cli.gan.metrics`: exact W1/W2 (POT), PacGAN mode metrics, clipping statistics,
  oscillation detection from a spectrum;
- :mod:`~wgf_cli.gan.dirac`: the Dirac-GAN pendulum and its closed forms;
- :mod:`~wgf_cli.gan.twopoint`: the two-point GAN (a generator of weights on δ₋₁ and δ₊₁
  against a clipped linear critic): first integral, limit orbit, time to reach it;
- :mod:`~wgf_cli.gan.parallel_lines`: JS against W1 between segments at distance θ, closed
  form and trained critics (the vanishing gradient of the original GAN).
"""
