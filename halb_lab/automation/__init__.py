"""The real Pulumi engine (driven through the Automation API) and the lab stack deployed with it."""
