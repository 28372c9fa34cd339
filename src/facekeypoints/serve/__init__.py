"""The keypoint service: ``facekeypoints serve`` (FastAPI), its JSON API and a web page."""
