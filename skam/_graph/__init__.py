"""Energy graphs: neuron layers (Lagrangians) and hypersynapses (energy terms)."""
