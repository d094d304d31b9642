"""Batch scoring: a Parquet or CSV file of transactions in, one decision per row out."""
