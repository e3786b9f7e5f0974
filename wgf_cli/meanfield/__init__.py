"""Two-layer ReLU networks in the mean-field limit (Chizat & Bach 2018; Mei, Montanari & Nguyen 2018).

A network ``f(x) = (1/m) sum_i alpha_i relu(<w_i, x>)`` is the empirical measure
``mu = (1/m) sum_i delta_(w_i, alpha_i)``; its square loss ``F(mu) = (1/n) sum_j (int alpha
relu(<w, x_j>) dmu - y_j)^2`` has first variation (potential)

    V_mu(w, alpha) = dF/dmu = (2/n) sum_j e_j alpha relu(<w, x_j>),   e_j = f(x_j) - y_j,

and particle gradient descent with the mean-field time ``w_i <- w_i - dt * m * dF/dw_i`` is the
forward Euler scheme of the Wasserstein gradient flow ``d mu/dt = div(mu grad V_mu)``.

Modules: :mod:`.data` (targets and data sets), :mod:`.network` (outputs, loss, explicit
gradients, the four measure representations), :mod:`.particles` (gd, sgd, wprox),
:mod:`.grid_flow` (entropic JKO of the neuron measure on a (w, b) grid, d = 2),
:mod:`.distances` (W2 / sliced W between neuron measures), :mod:`.protocol` (particle and
grid runs from plain configs), :mod:`.compare` (gd vs the grid flow vs wprox from the same
neurons) and :mod:`.width` (the width study, log-log slope fits with confidence intervals).
"""
