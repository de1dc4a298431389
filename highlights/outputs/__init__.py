"""What a run hands on, written from detected ranges: timelines an editor opens (`timelines`)."""
