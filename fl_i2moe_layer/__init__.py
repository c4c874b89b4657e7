"""FL-I2MoE fusion layer (unique / synergy / redundancy experts). Not implemented yet: see the
project's issues; the interaction attribution lives in :mod:`captum_interactions`."""

__all__: list[str] = []
