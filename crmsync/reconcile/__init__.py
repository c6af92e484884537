"""The morning reconciliation: payment-method tables, the finding rules, and the report."""
