"""What the admin console and the customer billing page show, gathered for their templates."""
