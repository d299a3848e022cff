"""ClipStream: the reference short-video app that `drills` breaks."""
