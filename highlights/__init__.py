"""Find the highlights in uncut sports video and cut them into clips."""
