"""devrag.server"""
