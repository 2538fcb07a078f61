"""Ways into meterbill: the HTTP API (`api`) and the command line (`cli`)."""
