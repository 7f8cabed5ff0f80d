"""devrag.retrieval"""
