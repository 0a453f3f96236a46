"""Paper trading: feeds, incremental features, a simulated broker, the risk gate and the journal."""
