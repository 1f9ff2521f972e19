"""Security and hostile-input tests: secrets, bounded decoding, ACLs and TLS on real servers."""
