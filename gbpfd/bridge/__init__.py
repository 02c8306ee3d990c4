"""The host bridge: the memory the host and the control CTA share."""
