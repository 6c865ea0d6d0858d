"""The invoker: runs attempts against deployments (service protocol over HTTP/1.1 and HTTP/2)."""
