"""Payment initiation: what the gateway checks of a PISP's payment requests before the bank sees them."""
