"""devrag.eval"""
