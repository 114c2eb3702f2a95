"""Address planning lives with the config it plans from; this module keeps the short import path."""

from halb.config.addresses import AddressError, AddressPlan, plan, plan_addresses

__all__ = ["AddressError", "AddressPlan", "plan", "plan_addresses"]
