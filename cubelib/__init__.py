"""cubelib"""
