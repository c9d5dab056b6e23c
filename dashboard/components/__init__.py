"""Functions that build component trees; every user-provided string goes in as a text child."""
