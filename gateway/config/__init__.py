"""Configuration: gateway.yaml and the mappings, read line-aware and checked, every problem at once;
the values, settings, rules and the platform registry everything above reads. The bottom layer:
it imports nothing of the gateway's."""
