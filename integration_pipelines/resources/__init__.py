"""Resources shared by connections: credentials, auth, the partner HTTP client."""
