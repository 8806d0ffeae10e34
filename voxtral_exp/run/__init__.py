"""What a run is and leaves behind: its config, its record and lock, its model card, sweep summaries."""
