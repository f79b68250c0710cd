"""Recording folders (a "session" in the study's sense: one participant, one sitting):
recording one (``recorder``), their format (``layout``), repair and exports.

Importing this package is cheap; ``app.recording.recorder`` pulls in the engine.
"""
