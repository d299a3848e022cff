# Our Toxiproxy-compatible server (python -m drills.toxiproxy) behind the official image's
# interface (ghcr.io/shopify/toxiproxy): /toxiproxy is the server and /toxiproxy-cli answers
# `list`, which Compose files use as the healthcheck of either image. Both scripts are in the app
# image already (app.Dockerfile); this image only makes /toxiproxy the entrypoint.
# Flags: Go's flag package accepts --host=... as well as -host=..., so compose passes
# `--host=0.0.0.0 --port=8474`, which both servers understand.
# Context: this file alone (drills/stack/images.py sends it).
ARG APP_IMAGE=drills/app:latest
FROM ${APP_IMAGE}
LABEL drills.image=toxiproxy
ENTRYPOINT ["/toxiproxy"]
CMD ["--host=0.0.0.0", "--port=8474"]
