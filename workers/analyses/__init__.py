"""Analyses: pure functions (model, data, device, params) -> result dataclass."""
