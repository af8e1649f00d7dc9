"""Configuration: gateway.yaml and the mappings, read line-aware and checked, every problem at once."""
