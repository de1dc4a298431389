"""What a run hands on, written from detected ranges: clips and the reel (`clips`),
segments.json (`segments_json`), the HTML report (`report`), timelines an editor opens
(`timelines`), the mail (`notification`), and the output folder they are swapped into (`folder`).
"""
