"""Session folders: recording (``recorder``), their format (``layout``), repair and exports.

Importing this package is cheap; ``app.session.recorder`` pulls in the engine.
"""
