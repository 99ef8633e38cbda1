"""Models: the SceneWorld networks, torchvision architectures, checkpoints, layer names."""
