"""synflow: a SynFlowNet trained with the f-Trajectory-Balance loss family."""

__version__ = "0.1.0"
