"""JSON APIs of badges_bridge, one package per version."""
