"""Thin adapters over the cloud SDKs: the only modules that call boto3 and the Azure SDK."""
