"""The commands as library calls: the only layer that decides in which order the stages run."""
