"""devrag.ingest"""
