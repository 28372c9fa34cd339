"""Training: masked coordinate losses (and the training engine's modules)."""
from facekeypoints.train.losses import complete_graph_distance, list_losses, make_loss

__all__ = ["make_loss", "list_losses", "complete_graph_distance"]
