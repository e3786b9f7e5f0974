"""Gradient flows on grids: energies, entropic JKO stepping, references, Langevin particles."""
