"""Online payments through gateways (Razorpay): pay requests, webhooks, payments applied once."""
