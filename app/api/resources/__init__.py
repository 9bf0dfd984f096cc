"""The API's resources, one module each; importing them declares their operations."""
