"""cnncli: MNIST CNNs from hand-written NumPy layers with exact backprop."""

__version__ = "0.1.0"
