"""What the engine does, between the API and the store: placing and executing orders."""
