"""The registry of deployments and services, from discovery manifests and operator overrides."""
