"""Quality decisions on placed defects: roll marks, grading, alarms."""
